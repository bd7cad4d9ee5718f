"""The dissuasion desk's tasks: one per police visit or hotline call handed to the desk.

A new table, nothing altered: before it no action was handed to a desk.

Revision ID: 0003_desk_tasks
Revises: 0002_reach_back
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_desk_tasks'
down_revision = '0002_reach_back'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('desk_tasks',
    sa.Column('task_id', sa.String(length=255), nullable=False),
    sa.Column('action_id', sa.String(length=255), nullable=False),
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('alert_version', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('typology', sa.String(length=32), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('deadline', sa.DateTime(), nullable=False),
    sa.Column('script_key', sa.String(length=64), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('holder_role', sa.String(length=16), nullable=False),
    sa.Column('holder_code', sa.String(length=64), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.Column('grid', sa.String(length=32), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('station_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('assignee', sa.String(length=64), nullable=True),
    sa.Column('closing_since', sa.DateTime(), nullable=True),
    sa.Column('closed_by', sa.String(length=64), nullable=True),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('task_id')
    )
    with op.batch_alter_table('desk_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_desk_tasks_alert', ['alert_id'], unique=False)
        batch_op.create_index('ix_desk_tasks_due', ['state', 'deadline'], unique=False)
        batch_op.create_index('ix_desk_tasks_holder', ['holder_role', 'holder_code', 'state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('desk_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_desk_tasks_holder')
        batch_op.drop_index('ix_desk_tasks_due')
        batch_op.drop_index('ix_desk_tasks_alert')

    op.drop_table('desk_tasks')
