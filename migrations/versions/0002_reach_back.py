"""Reach-back facts of retro alert versions (回溯预警): the entry listed late and the contact it caught.

A new table, nothing altered: alerts written before it had no reach-back, so there is nothing
to fill in, and a ledger of many days migrates in an instant.

Revision ID: 0002_reach_back
Revises: 0001_initial
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_reach_back'
down_revision = '0001_initial'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_reach_back',
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('listed_at', sa.DateTime(), nullable=False),
    sa.Column('contacted_at', sa.DateTime(), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('alert_id', 'version')
    )
    with op.batch_alter_table('alert_reach_back', schema=None) as batch_op:
        batch_op.create_index('ix_alert_reach_back_source', ['source'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alert_reach_back', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_reach_back_source')

    op.drop_table('alert_reach_back')
