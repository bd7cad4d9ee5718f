"""The initial ledger: records by their own ids, derived alert status, access log, follow-up runs.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0001_initial'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('path', sa.String(length=256), nullable=False),
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('field', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('actions',
    sa.Column('action_id', sa.String(length=255), nullable=False),
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('alert_version', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('deadline', sa.DateTime(), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('action_id')
    )
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.create_index('ix_actions_alert', ['alert_id'], unique=False)

    op.create_table('alert_accounts',
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('bank', sa.String(length=32), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('alert_id', 'version', 'bank', 'account')
    )
    with op.batch_alter_table('alert_accounts', schema=None) as batch_op:
        batch_op.create_index('ix_alert_accounts_account', ['account'], unique=False)

    op.create_table('alert_status',
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('typology', sa.String(length=32), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.Column('grid', sa.String(length=32), nullable=False),
    sa.Column('alert_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('channels', sa.String(length=256), nullable=False),
    sa.Column('first_contact_at', sa.DateTime(), nullable=True),
    sa.Column('dissuaded_at', sa.DateTime(), nullable=True),
    sa.Column('sla_breaches', sa.Integer(), nullable=False),
    sa.Column('escalations', sa.Integer(), nullable=False),
    sa.Column('reopened', sa.Boolean(), nullable=False),
    sa.Column('case_filed', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('alert_id')
    )
    with op.batch_alter_table('alert_status', schema=None) as batch_op:
        batch_op.create_index('ix_alert_status_alert_at', ['alert_at'], unique=False)
        batch_op.create_index('ix_alert_status_area', ['county', 'station'], unique=False)
        batch_op.create_index('ix_alert_status_person', ['person_id'], unique=False)

    op.create_table('alerts',
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('typology', sa.String(length=32), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.Column('grid', sa.String(length=32), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('elderly', sa.Boolean(), nullable=False),
    sa.Column('student', sa.Boolean(), nullable=False),
    sa.Column('first_signal_at', sa.DateTime(), nullable=False),
    sa.Column('alert_at', sa.DateTime(), nullable=False),
    sa.Column('rules_version', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('alert_id', 'version')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_person', ['person_id'], unique=False)
        batch_op.create_index('ix_alerts_phone', ['phone'], unique=False)

    op.create_table('audit_findings',
    sa.Column('audit_id', sa.String(length=255), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('problem', sa.String(length=48), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('audit_id', 'seq')
    )
    with op.batch_alter_table('audit_findings', schema=None) as batch_op:
        batch_op.create_index('ix_audit_findings_unit', ['unit'], unique=False)

    op.create_table('audits',
    sa.Column('audit_id', sa.String(length=255), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('typology', sa.String(length=32), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.Column('filed_at', sa.DateTime(), nullable=False),
    sa.Column('findings', sa.Integer(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('audit_id')
    )
    with op.batch_alter_table('audits', schema=None) as batch_op:
        batch_op.create_index('ix_audits_person', ['person_id'], unique=False)

    op.create_table('bank_acks',
    sa.Column('request_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('bank', sa.String(length=32), nullable=False),
    sa.Column('acked_at', sa.DateTime(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('request_id', 'status')
    )
    op.create_table('bank_request_alerts',
    sa.Column('request_id', sa.String(length=255), nullable=False),
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('escalation_id', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('request_id', 'alert_id')
    )
    with op.batch_alter_table('bank_request_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_bank_request_alerts_alert', ['alert_id'], unique=False)

    op.create_table('bank_requests',
    sa.Column('request_id', sa.String(length=255), nullable=False),
    sa.Column('bank', sa.String(length=32), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason_code', sa.String(length=32), nullable=False),
    sa.Column('alert_ref', sa.String(length=32), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('request_id')
    )
    with op.batch_alter_table('bank_requests', schema=None) as batch_op:
        batch_op.create_index('ix_bank_requests_account', ['account'], unique=False)

    op.create_table('carrier_acks',
    sa.Column('request_id', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('carrier', sa.String(length=32), nullable=False),
    sa.Column('acked_at', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('request_id', 'status')
    )
    op.create_table('carrier_requests',
    sa.Column('request_id', sa.String(length=255), nullable=False),
    sa.Column('carrier', sa.String(length=32), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('reason_code', sa.String(length=32), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('request_id')
    )
    with op.batch_alter_table('carrier_requests', schema=None) as batch_op:
        batch_op.create_index('ix_carrier_requests_phone', ['phone'], unique=False)

    op.create_table('case_reports',
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('typology', sa.String(length=32), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.Column('victim_phone', sa.String(length=32), nullable=True),
    sa.Column('victim_account', sa.String(length=64), nullable=True),
    sa.Column('loss_amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('filed_at', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    with op.batch_alter_table('case_reports', schema=None) as batch_op:
        batch_op.create_index('ix_case_reports_case', ['case_id'], unique=False)

    op.create_table('escalations',
    sa.Column('escalation_id', sa.String(length=255), nullable=False),
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('tier', sa.String(length=16), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('escalation_id')
    )
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.create_index('ix_escalations_alert', ['alert_id'], unique=False)

    op.create_table('followup_outcomes',
    sa.Column('followup_outcome_id', sa.String(length=255), nullable=False),
    sa.Column('task_id', sa.String(length=255), nullable=False),
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('visited_at', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('followup_outcome_id')
    )
    with op.batch_alter_table('followup_outcomes', schema=None) as batch_op:
        batch_op.create_index('ix_followup_outcomes_alert', ['alert_id'], unique=False)

    op.create_table('followup_runs',
    sa.Column('period_start', sa.DateTime(), nullable=False),
    sa.Column('period_end', sa.DateTime(), nullable=False),
    sa.Column('ran_at', sa.DateTime(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('candidates', sa.Integer(), nullable=False),
    sa.Column('sampled', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('period_start')
    )
    op.create_table('followup_tasks',
    sa.Column('task_id', sa.String(length=255), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('county', sa.String(length=32), nullable=False),
    sa.Column('station', sa.String(length=32), nullable=False),
    sa.Column('period_start', sa.DateTime(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('task_id')
    )
    with op.batch_alter_table('followup_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_followup_tasks_alert', ['alert_id'], unique=False)

    op.create_table('outcomes',
    sa.Column('outcome_id', sa.String(length=255), nullable=False),
    sa.Column('action_id', sa.String(length=255), nullable=False),
    sa.Column('alert_id', sa.String(length=255), nullable=False),
    sa.Column('person_id', sa.String(length=255), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('outcome_id')
    )
    with op.batch_alter_table('outcomes', schema=None) as batch_op:
        batch_op.create_index('ix_outcomes_action', ['action_id'], unique=False)
        batch_op.create_index('ix_outcomes_alert', ['alert_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outcomes', schema=None) as batch_op:
        batch_op.drop_index('ix_outcomes_alert')
        batch_op.drop_index('ix_outcomes_action')

    op.drop_table('outcomes')
    with op.batch_alter_table('followup_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_followup_tasks_alert')

    op.drop_table('followup_tasks')
    op.drop_table('followup_runs')
    with op.batch_alter_table('followup_outcomes', schema=None) as batch_op:
        batch_op.drop_index('ix_followup_outcomes_alert')

    op.drop_table('followup_outcomes')
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_index('ix_escalations_alert')

    op.drop_table('escalations')
    with op.batch_alter_table('case_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_case_reports_case')

    op.drop_table('case_reports')
    with op.batch_alter_table('carrier_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_carrier_requests_phone')

    op.drop_table('carrier_requests')
    op.drop_table('carrier_acks')
    with op.batch_alter_table('bank_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_bank_requests_account')

    op.drop_table('bank_requests')
    with op.batch_alter_table('bank_request_alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_bank_request_alerts_alert')

    op.drop_table('bank_request_alerts')
    op.drop_table('bank_acks')
    with op.batch_alter_table('audits', schema=None) as batch_op:
        batch_op.drop_index('ix_audits_person')

    op.drop_table('audits')
    with op.batch_alter_table('audit_findings', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_findings_unit')

    op.drop_table('audit_findings')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_phone')
        batch_op.drop_index('ix_alerts_person')

    op.drop_table('alerts')
    with op.batch_alter_table('alert_status', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_status_person')
        batch_op.drop_index('ix_alert_status_area')
        batch_op.drop_index('ix_alert_status_alert_at')

    op.drop_table('alert_status')
    with op.batch_alter_table('alert_accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_accounts_account')

    op.drop_table('alert_accounts')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_index('ix_actions_alert')

    op.drop_table('actions')
    op.drop_table('access_log')
