"""Rules versions: every publication of a rules version (who, when, why, both documents).

Revision ID: 0006_rules_versions
Revises: 0005_audit_explanations
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_rules_versions'
down_revision = '0005_audit_explanations'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rules_publications',
    sa.Column('publication_id', sa.String(length=128), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('published_by', sa.String(length=64), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=False),
    sa.Column('why', sa.Text(), nullable=False),
    sa.Column('rollback_from', sa.String(length=64), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('publication_id')
    )
    with op.batch_alter_table('rules_publications', schema=None) as batch_op:
        batch_op.create_index('ix_rules_publications_version', ['version'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rules_publications', schema=None) as batch_op:
        batch_op.drop_index('ix_rules_publications_version')
    op.drop_table('rules_publications')
