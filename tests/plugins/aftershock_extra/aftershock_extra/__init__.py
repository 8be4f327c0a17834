"""aftershock-extra: a third party's plug-ins, found by aftershock through entry points only."""
