from tortoise import migrations
from tortoise.migrations import operations as ops
from app.security.fields import dumps_encrypted, loads_encrypted
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('gongdan', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditChainHead',
            fields=[
                ('id', fields.IntField(generated=False, primary_key=True, unique=True, db_index=True)),
                ('seq', fields.BigIntField(default=0)),
                ('last_hash', fields.CharField(default='', max_length=64)),
                ('last_id', fields.BigIntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'audit_chain_head', 'app': 'gongdan', 'pk_attr': 'id', 'table_description': 'The single row (id 1) naming the end of the audit chain: appends lock it, so concurrent writers never fork.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConsentRecord',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('gongdan.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='consents', on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharField(description='phone | photos', max_length=32)),
                ('text_version', fields.CharField(description='the version of the consent text shown (app.security.consent.CONSENT_VERSION)', max_length=32)),
                ('source', fields.CharField(default='customer_h5', description='where it was given: customer_h5, ...', max_length=32)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'consent_record', 'app': 'gongdan', 'indexes': [Index(fields=['customer_id', 'purpose'])], 'pk_attr': 'id', 'table_description': "A customer's consent to collecting one kind of personal data: what, when, and which wording they agreed to."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ContactVerification',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('gongdan.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='contact_checks', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(description='phone | email', max_length=8)),
                ('value_hash', fields.CharField(description="the keyed hash of the verified value (the customer's phone_hash / email_hash while it is still theirs)", max_length=64)),
                ('source', fields.CharField(default='staff', description='staff (confirmed by a staff member) | channel (a channel or directory that proves it)', max_length=16)),
                ('staff_id', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'contact_verification', 'app': 'gongdan', 'unique_together': (('customer', 'kind', 'value_hash'),), 'indexes': [Index(fields=['kind', 'value_hash'])], 'pk_attr': 'id', 'table_description': "A customer's phone or e-mail proven to be theirs: confirmed by staff, or set by a channel that proves it."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CustomerMerge',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('survivor', fields.ForeignKeyField('gongdan.Customer', source_field='survivor_id', db_constraint=True, to_field='id', related_name='merges_kept', on_delete=OnDelete.CASCADE)),
                ('merged', fields.ForeignKeyField('gongdan.Customer', source_field='merged_id', db_constraint=True, to_field='id', related_name='merges_absorbed', on_delete=OnDelete.CASCADE)),
                ('reason', fields.CharField(description='unionid (automatic, the same WeChat person) | phone | email | manual', max_length=16)),
                ('staff_id', fields.IntField(null=True, description='the staff member who merged (null for automatic merges)')),
                ('comment', fields.CharField(default='', max_length=500)),
                ('moved', fields.JSONField(default=dict, description='ids that moved to the survivor: {"identities": [..], "conversations": [..], "tickets": [..], "messages": [..]}', encoder=JSON_DUMPS, decoder=loads)),
                ('survivor_changes', fields.JSONField(default=dict, description='survivor fields the merge changed: {"name": [before, after], ...}', encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('undone_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('undone_by_id', fields.IntField(null=True)),
            ],
            options={'table': 'customer_merge', 'app': 'gongdan', 'indexes': [Index(fields=['survivor_id', 'undone_at'])], 'pk_attr': 'id', 'table_description': 'One merge of two customers and exactly what it moved, so staff can undo it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HolidayNotice',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('year', fields.IntField(unique=True)),
                ('title', fields.CharField(default='', max_length=200)),
                ('source_url', fields.CharField(null=True, description='where the notice was published (gov.cn), if given', max_length=500)),
                ('document', fields.JSONField(default=dict, description='canonical form: {"year", "title", "source", "holidays": [{"name", "start", "end", "workdays": [...]}]}', encoder=JSON_DUMPS, decoder=loads)),
                ('imported_by', fields.CharField(default='', description='the staff userid of the importing admin, or "cli"', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'holiday_notice', 'app': 'gongdan', 'pk_attr': 'id', 'table_description': 'An imported State Council holiday notice (国务院办公厅关于部分节假日安排的通知) for one year.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PiiToken',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, description='random lowercase letters (no digits, so a token never looks like a number)', max_length=16)),
                ('kind', fields.CharField(description='phone | id_card | email', max_length=16)),
                ('value_enc', fields.TextField(description='Fernet ciphertext of the value as written', unique=False)),
                ('value_hash', fields.CharField(db_index=True, description='keyed hash of the normalised value (E.164 for phones), for exact-match search', max_length=64)),
                ('customer', fields.ForeignKeyField('gongdan.Customer', source_field='customer_id', null=True, db_constraint=True, to_field='id', related_name='pii_tokens', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'pii_token', 'app': 'gongdan', 'pk_attr': 'id', 'table_description': 'A phone number, ID-card number or e-mail address found in a free text, kept encrypted.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RevokedSession',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sid_hash', fields.CharField(unique=True, max_length=64)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'revoked_session', 'app': 'gongdan', 'pk_attr': 'id', 'table_description': 'H5 sessions ended by logout: a cookie carrying one of these ids is treated as anonymous.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TicketRating',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('ticket', fields.OneToOneField('gongdan.Ticket', source_field='ticket_id', db_constraint=True, to_field='id', related_name='rating', on_delete=OnDelete.CASCADE)),
                ('score', fields.SmallIntField(description='1 (very unhappy) to 5 (very happy)')),
                ('comment', fields.CharField(default='', max_length=500)),
                ('channel', fields.CharField(default='', description='the channel kind the customer rated on: wecom_kf, wechat_mp, h5, ...', max_length=32)),
                ('source', fields.CharField(description='bot_survey (the chat survey after resolution) or h5_page (the customer ticket page)', max_length=16)),
                ('staff', fields.ForeignKeyField('gongdan.Staff', source_field='staff_id', null=True, description='the agent the rating counts for: the assignee when the ticket was resolved (or rated)', db_constraint=True, to_field='id', related_name='ratings', on_delete=OnDelete.SET_NULL)),
                ('ref', fields.CharField(default='', description="the caller's own key of this rating - recording again with the same ref updates it in place", max_length=64)),
                ('at', fields.DatetimeField(description='when the current rating was given', auto_now=False, auto_now_add=False)),
                ('history', fields.JSONField(default=list, description='earlier ratings, oldest first, each {"score", "comment", "channel", "source", "staff_id", "at"}', encoder=JSON_DUMPS, decoder=loads)),
            ],
            options={'table': 'ticket_rating', 'app': 'gongdan', 'indexes': [Index(fields=['staff_id', 'at'])], 'pk_attr': 'id', 'table_description': "The customer's current rating of a ticket (one per ticket), written only by app.tickets.ratings."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Article',
            name='pending',
            field=fields.JSONField(null=True, description="an agent's edit of a published or retired article (the changed fields), waiting for a lead or admin to", encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Article',
            name='pending_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Article',
            name='pending_by_id',
            field=fields.IntField(null=True, description='Staff.id of whoever proposed the pending edit last'),
        ),
        ops.AlterModelOptions(
            name='AuditLog',
            options={'table': 'audit_log', 'app': 'gongdan', 'indexes': [Index(fields=['object_type', 'object_id'])], 'pk_attr': 'id', 'table_description': 'Reveals of masked fields and other sensitive operations: who, when, what and why.'},
        ),
        ops.AddField(
            model_name='AuditLog',
            name='prev_hash',
            field=fields.CharField(default='', description='the previous chained row\'s row_hash ("" for the first)', max_length=64),
        ),
        ops.AddField(
            model_name='AuditLog',
            name='row_hash',
            field=fields.CharField(default='', description='SHA-256 hex of prev_hash + the canonical JSON of this row', max_length=64),
        ),
        ops.AddField(
            model_name='AuditLog',
            name='seq',
            field=fields.BigIntField(null=True, unique=True, description='1, 2, 3... in chain order (null for rows written before the chain existed)'),
        ),
        ops.AddField(
            model_name='Customer',
            name='erased_at',
            field=fields.DatetimeField(null=True, description="set when the customer's personal data was erased on request (app.customers.privacy): the row stays for the", auto_now=False, auto_now_add=False),
        ),
        ops.AlterField(
            model_name='OutboxMessage',
            name='payload',
            field=fields.JSONField(default=dict, description="encrypted as a whole at rest (it may hold a customer's personal data in clear for delivery)", encoder=dumps_encrypted, decoder=loads_encrypted),
        ),
        ops.AlterField(
            model_name='OutboxMessage',
            name='status',
            field=fields.CharField(default='pending', max_length=16),
        ),
    ]
