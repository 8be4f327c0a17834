"""`aftershock capacity`: the highest load at which every SLO of a scenario holds, healthy and
under the scenario's faults, found by stepping or bisecting the load within a time budget.

`plan` turns the budget into trial durations, `search` finds the knee from trial verdicts,
`trials` runs one trial through the engine's Runner, `workflow` ties them and writes the pages.
"""
