"""The dissuasion desk: police visits and hotline calls as tasks that people work (docs/desk.md).

    tasks.py     who holds a task, recording one, what a unit may see
    closing.py   closing a task with exactly one outcome on the outcomes topic
    outcomes.py  the outcome of a task, and producing it synchronously
    people.py    users with roles in a unit, password sign-in, sessions that expire
    dissuasion_scripts.py  the script (劝阻话术) for each warning type, from scripts/<type>.md
    api.py       the HTTP API under /api/desk (mounted by the console)
"""
