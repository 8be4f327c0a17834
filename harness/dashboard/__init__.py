"""The live web dashboard of a run (`aftershock run --web`) and of a finished one
(`aftershock report RUN_DIR --serve`); see README.md here."""
