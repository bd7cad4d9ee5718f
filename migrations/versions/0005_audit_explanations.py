"""Reverse-audit explanations written at the desk: one per audit and accountable unit.

A new table, nothing altered: before it an explanation had nowhere to be written.

Revision ID: 0005_audit_explanations
Revises: 0004_desk_people
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_audit_explanations'
down_revision = '0004_desk_people'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_explanations',
    sa.Column('audit_id', sa.String(length=255), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('written_by', sa.String(length=64), nullable=False),
    sa.Column('written_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('audit_id', 'unit')
    )


def downgrade() -> None:
    op.drop_table('audit_explanations')
