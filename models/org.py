"""Organisation: units, their sections, the aliases they are written under, users."""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from workflow.extensions import db
from workflow.vocabulary import UnitKind

from .utc import created_at_column


class Role:
    OFFICE_ADMIN = "office_admin"
    OFFICE_STAFF = "office_staff"
    UNIT_LEADER = "unit_leader"
    UNIT_STAFF = "unit_staff"
    VIEWER = "viewer"

    LABELS = {
        OFFICE_ADMIN: "办公室管理员",
        OFFICE_STAFF: "办公室工作人员",
        UNIT_LEADER: "单位负责人",
        UNIT_STAFF: "单位经办人",
        VIEWER: "区领导（只读）",
    }
    ALL = tuple(LABELS)
    OFFICE_ROLES = (OFFICE_ADMIN, OFFICE_STAFF)
    UNIT_ROLES = (UNIT_LEADER, UNIT_STAFF)


class Unit(db.Model):
    __tablename__ = "unit"
    __table_args__ = (CheckConstraint(UnitKind.sql_check("kind"), name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default=UnitKind.OTHER.value)
    created_at: Mapped[datetime] = created_at_column()
    # The unit's work-group robot (企业微信/钉钉 webhook): notices to its users are posted there too.
    robot_kind: Mapped[str | None] = mapped_column(String(10))
    robot_url: Mapped[str | None] = mapped_column(String(500))
    robot_secret: Mapped[str | None] = mapped_column(String(200))   # 钉钉 加签; 企业微信 has none

    sections: Mapped[list[Section]] = relationship(back_populates="unit", order_by="Section.name")
    aliases: Mapped[list[UnitAlias]] = relationship(back_populates="unit", cascade="all, delete-orphan")
    users: Mapped[list[User]] = relationship(back_populates="unit")

    @property
    def kind_label(self) -> str:
        return UnitKind.label_of(self.kind)

    def __repr__(self) -> str:
        return f"<Unit {self.name}>"


class UnitAlias(db.Model):
    """A name written in documents and what it stands for: another way a unit is written
    (区发展改革委 → 区发展改革局), or, with no unit, a phrase that names no unit (the office
    decided so in an import review: the importer keeps it as text on the task)."""
    __tablename__ = "unit_alias"

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), unique=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), index=True)

    unit: Mapped[Unit | None] = relationship(back_populates="aliases")

    @property
    def not_a_unit(self) -> bool:
        return self.unit_id is None


class Section(db.Model):
    """A section (科室) of a unit."""
    __tablename__ = "section"
    __table_args__ = (UniqueConstraint("unit_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))

    unit: Mapped[Unit] = relationship(back_populates="sections")


class User(UserMixin, db.Model):
    __tablename__ = "user"
    __table_args__ = (CheckConstraint(f"role IN {Role.ALL!r}", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(256))
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Part of the session identity: bumping it (logout, password change) makes
    # every cookie issued before worthless, even a copied one.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_at_column()
    # Where notices reach this user besides the inbox (the settings page, workflow/notices/).
    email: Mapped[str | None] = mapped_column(String(254))
    notify_email: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_robot: Mapped[bool] = mapped_column(Boolean, default=True)

    unit: Mapped[Unit] = relationship(back_populates="users")

    @property
    def is_active(self) -> bool:  # Flask-Login
        return bool(self.active)

    def get_id(self) -> str:  # Flask-Login: the id alone would survive a logout
        return f"{self.id}:{self.session_version}"

    @property
    def role_label(self) -> str:
        return Role.LABELS.get(self.role, self.role)

    @property
    def is_office(self) -> bool:
        return self.role in Role.OFFICE_ROLES

    @property
    def is_unit_user(self) -> bool:
        """A unit's leader or staff (the office and viewers are not)."""
        return self.role in Role.UNIT_ROLES

    def __repr__(self) -> str:
        return f"<User {self.username}>"
