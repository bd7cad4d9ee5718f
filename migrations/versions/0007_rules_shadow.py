"""Rules shadow: every setting of the candidate in shadow, and the alerts it raised (never routed).

Revision ID: 0007_rules_shadow
Revises: 0006_rules_versions
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0007_rules_shadow'
down_revision = '0006_rules_versions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rules_shadows',
    sa.Column('shadow_id', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=True),
    sa.Column('set_by', sa.String(length=64), nullable=False),
    sa.Column('set_at', sa.DateTime(), nullable=False),
    sa.Column('why', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('shadow_id')
    )
    op.create_table('shadow_alerts',
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('rules_version', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('typology', sa.String(length=32), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.Column('alert_at', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('alert_id', 'version', 'rules_version')
    )
    with op.batch_alter_table('shadow_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_shadow_alerts_alert_at', ['alert_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('shadow_alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_shadow_alerts_alert_at')
    op.drop_table('shadow_alerts')
    op.drop_table('rules_shadows')
