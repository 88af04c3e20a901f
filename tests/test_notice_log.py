"""通知记录 (/notices/): its figures — the notices listed, each delivery status, the unread
notices — are exact up to COUNT_LIMIT and said to be "以上" beyond it; filtering and paging
are unchanged by the limit."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from models import Delivery, Notification
from workflow.extensions import db
from workflow.timeutil import utcnow
from workflow.vocabulary import Channel, DeliveryStatus


@pytest.fixture
def db_template() -> str:
    return "activity"


def _add_deliveries(app, sent: int, failed: int) -> None:
    """E-mail deliveries of the newest notices (the activity data has no mail server)."""
    with app.app_context():
        ids = db.session.scalars(select(Notification.id).order_by(Notification.id.desc()).limit(sent + failed)).all()
        now = utcnow()
        for n, notification_id in enumerate(ids):
            db.session.add(Delivery(notification_id=notification_id, channel=Channel.EMAIL, address="a@example.org",
                                    status=DeliveryStatus.SENT if n < sent else DeliveryStatus.FAILED,
                                    next_attempt_at=now, created_at=now))
        db.session.commit()


def _figures(app):
    with app.app_context():
        total = db.session.scalar(select(func.count(Notification.id)))
        unread = db.session.scalar(select(func.count(Notification.id)).where(Notification.read_at.is_(None)))
        by_status = dict(db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    return total, unread, by_status


def _summary(page: str) -> str:
    return re.search(r"<p>投递合计：(.*?)</p>", page, re.S).group(1)


def test_the_figures_are_exact_below_the_limit(app, login):
    _add_deliveries(app, sent=3, failed=2)
    total, unread, by_status = _figures(app)
    assert total > 60 and unread > 0 and by_status == {"sent": 3, "failed": 2}
    page = login("office").get("/notices/").text
    assert f"共 {total} 条，" in page and "以上" not in page
    summary = _summary(page)
    for status, label in DeliveryStatus.labels().items():
        assert f"{label} <strong>{by_status.get(status, 0)}</strong>" in summary
    assert f"站内消息未读 <strong>{unread}</strong> 条" in summary
    read_only = login("office").get("/notices/?read=no").text
    assert f"共 {unread} 条" in read_only


def test_beyond_the_limit_the_page_says_so_and_pages_no_deeper(app, login):
    _add_deliveries(app, sent=3, failed=2)
    total, unread, by_status = _figures(app)
    limit = 2
    assert unread > limit and total > 2 * app.config["PER_PAGE"]
    app.config["COUNT_LIMIT"] = limit
    office = login("office")
    page = office.get("/notices/").text
    assert f"共 {limit} 条以上" in page
    assert f"站内消息未读 <strong>{limit}</strong> 条以上" in _summary(page)
    # Every status under the limit is still exact; one above it is said to be more.
    for status, label in DeliveryStatus.labels().items():
        n = by_status.get(status, 0)
        shown = f"<strong>{limit}</strong>以上" if n > limit else f"<strong>{n}</strong>"
        assert f"{label} {shown}" in _summary(page)
    assert "发送失败 <strong>2</strong>" in _summary(page) and f"已发送 <strong>{limit}</strong>以上" in _summary(page)
    # The pages stop at the counted rows: a page asked beyond them is answered with the deepest one.
    app.config["PER_PAGE"] = 1
    page = office.get("/notices/").text
    assert f"共 {limit} 条以上，第 1/{limit} 页" in page and f"翻页只到第 {limit} 页" in page
    assert 'rel="next"' in page
    deep = office.get(f"/notices/?page={total}").text
    assert f'aria-current="page">{limit}</span>' in deep and f"列表只能翻到第 {limit} 页，已显示该页" in deep
    assert "没有符合条件的通知" not in deep and 'rel="next"' not in deep and 'rel="prev"' in deep


# ---------------------------------------------------------------- the header's unread count

def _header_count(page: str) -> int:
    found = re.search(r'<span class="count" aria-label="(\d+) 条未读">', page)
    return int(found.group(1)) if found else 0


def test_the_header_counts_the_user_unread_notices_as_they_are_read(app, login):
    """The count comes with the user's load (one query for the user, the count and the audit head);
    it is that user's unread notices, one less after reading one, none after reading all."""
    from models import User
    from tests.helpers import csrf_token

    with app.app_context():
        username, user_id, unread = db.session.execute(
            select(User.username, User.id, func.count(Notification.id)).join(Notification, Notification.user_id == User.id)
            .where(Notification.read_at.is_(None)).group_by(User.id, User.username)
            .order_by(func.count(Notification.id).desc()).limit(1)).one()
        first = db.session.scalar(select(Notification.id).where(Notification.user_id == user_id,
                                                                Notification.read_at.is_(None)).limit(1))
    assert unread >= 2
    client = login(username)
    assert _header_count(client.get("/tasks/").text) == unread
    token = csrf_token(client, "/inbox/")
    page = client.post(f"/inbox/{first}/read", data={"csrf_token": token}, follow_redirects=True).text
    assert _header_count(page) == unread - 1
    page = client.post("/inbox/read-all", data={"csrf_token": token}, follow_redirects=True).text
    assert _header_count(page) == 0 and "has-unread" not in page
