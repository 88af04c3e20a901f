"""How long a failed sign-in takes for a real, an unknown and a deactivated user
name, with the production scrypt parameters (auth/passwords.py METHOD).

If the three medians differ by more than noise, the answer time tells an
attacker which names exist. Prints figures, asserts nothing:

    .venv/bin/python bench/login_timing.py [--rounds 15]

Runs on a throw-away SQLite database; the rate limits are raised out of the way
(they are not what is measured), CSRF is off so that every request is one POST.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    from flask_migrate import upgrade

    from auth.passwords import METHOD
    from workflow.app import create_app
    from workflow.extensions import db

    tmp = Path(tempfile.mkdtemp(prefix="luoshi-bench-"))
    app = create_app({
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'bench.sqlite'}", "SECRET_KEY": "bench",
        "UPLOAD_FOLDER": str(tmp / "uploads"), "REPORT_FOLDER": str(tmp / "reports"),
        "WTF_CSRF_ENABLED": False, "PASSWORD_HASH_METHOD": METHOD,
        # Out of the way: the limits are not what is measured.
        "LOGIN_CLIENT_LIMIT": "100000 per hour", "LOGIN_BACKOFF": "100000 per hour",
        "LOGIN_AUDIT_LIMIT": "100000 per hour", "LOGIN_ALERT": "100000 per hour",
        "LOGIN_MAX_FAILURES": 100000,   # the account lockout of earlier versions
    })
    with app.app_context():
        from auth.passwords import hash_password
        from models import Role, Unit, User
        from workflow.vocabulary import UnitKind

        upgrade()
        unit = Unit(name="区指挥部办公室", kind=UnitKind.OFFICE)
        db.session.add(unit)
        db.session.flush()
        for username, active in (("real.user", True), ("gone.user", False)):
            db.session.add(User(username=username, display_name=username, unit_id=unit.id, role=Role.OFFICE_STAFF,
                                password_hash=hash_password("right-password-1"), active=active))
        db.session.commit()

    client = app.test_client()
    cases = {"real name, wrong password": "real.user", "unknown name": "no.such.user",
             "deactivated name": "gone.user"}
    times: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(args.rounds):
        for label, username in cases.items():     # interleaved, so that drift hits every case alike
            started = time.perf_counter()
            response = client.post("/auth/login", data={"username": username, "password": "wrong-password-1"})
            times[label].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 401, response.status_code

    print(f"failed sign-in, median of {args.rounds} (scrypt {METHOD}, SQLite, {os.cpu_count()} CPUs):")
    for label, values in times.items():
        print(f"  {label:28s} {statistics.median(values):7.1f} ms   (min {min(values):6.1f}, max {max(values):6.1f})")


if __name__ == "__main__":
    main()
