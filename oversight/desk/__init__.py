"""The dissuasion desk: police visits and hotline calls as tasks that people work (docs/desk.md).

    tasks.py     who holds a task, recording one, what a unit may see
    closing.py   closing a task with exactly one outcome on the outcomes topic
    api.py       the HTTP API under /api/desk (mounted by the console)
"""
