"""Programs the pressure faults run as child processes (`python -m faults.children.<name>`).

Each takes the fault's marker as its first argument and ignores it: the marker only has
to sit in the child's command line, where `faults.resource.marked_pids` finds it after a
crash of the harness. Each prints one `ready ...` line once it holds its load, and exits
by itself after `lifetime` seconds as a last safety net.
"""
