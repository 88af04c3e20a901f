"""What one shared `transitions` Machine saves over a Machine per row.

    .venv/bin/python bench/machine_bench.py [N]

Prints, for N task parts (default 1000 and 10000), the time and the memory
retained to run start + submit on every part: with the app's shared machine
(workflow/machine.py) and with the naive Machine-per-row pattern.
"""
from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from transitions import Machine  # noqa: E402

from workflow.machine import fire, transitions_for  # noqa: E402
from workflow.vocabulary import PART_STATES, PLANNED  # noqa: E402


def _app_context():
    from workflow.app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "TESTING": True})
    return app.app_context()


def make_parts(n: int):
    from models import Evidence, TaskPart

    parts = []
    for _ in range(n):
        part = TaskPart(state=PLANNED)
        part.evidence.append(Evidence(kind="text", text="已完成"))
        parts.append(part)
    return parts


def shared(parts) -> None:
    for part in parts:
        fire(part, "start")
        fire(part, "submit", statement="已完成")


def per_row(parts) -> list:
    machines = []
    for part in parts:
        machine = Machine(model=part, states=list(PART_STATES), transitions=transitions_for("part"), initial=part.state,
                          auto_transitions=False, send_event=True, model_attribute="state")
        machines.append(machine)
        machine.events["start"].trigger(part)
        machine.events["submit"].trigger(part, statement="已完成")
    return machines


def measure(label: str, run, n: int) -> None:
    parts = make_parts(n)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    kept = run(parts)
    elapsed = time.perf_counter() - started
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del kept
    print(f"{label:<18} {n:>6} parts  {elapsed:7.3f} s  {retained / 1024:9.1f} KiB retained")


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    with _app_context():
        for n in sizes:
            measure("shared machine", shared, n)
            measure("machine per row", per_row, n)


if __name__ == "__main__":
    main()
