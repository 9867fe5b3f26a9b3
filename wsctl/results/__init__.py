"""Results: criteria, the verdicts they come to, and the run report every format renders.

    criteria   ``metric.stat: "OP value"`` parsed once, judged against a Result
    outcome    ScenarioOutcome and RunReport: verdicts summed up, exit codes, baselines

A layer below scenario and bench (DESIGN.md section 1): it imports only ``wsctl.metrics``
and the kernel, so both the scenario runner and the bench judge with the same code, and
``wsctl.report`` renders what either made. Pure data and functions; no I/O.
"""
