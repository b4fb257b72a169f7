"""The catalog's models, taken over from apiproxy with their tables.

The tables were created by apiproxy's migrations 0001-0003 and keep their
names (`apiproxy_*`), so this migration changes only Django's state, never the
database: an existing installation keeps every row. apiproxy's 0004 then
drops the models from its own state. Content types and permissions move
with the models, so staff groups keep the rights they were given.
"""

import catalog.baseurl
import catalog.crypto
import catalog.models
import django.core.validators
import django.db.models.deletion
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


MOVED = (
    "backend",
    "model",
    "deployment",
    "grouplimits",
    "userlimits",
    "keylimits",
    "accessrequest",
)


def _relabel(apps, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    taken = set(
        ContentType.objects.filter(app_label=target, model__in=MOVED).values_list(
            "model", flat=True
        )
    )
    ContentType.objects.filter(app_label=source, model__in=MOVED).exclude(
        model__in=taken
    ).update(app_label=target)


def content_types_move(apps, schema_editor):
    # Permissions point at content types: relabelling keeps every grant.
    _relabel(apps, "apiproxy", "catalog")


def content_types_return(apps, schema_editor):
    _relabel(apps, "catalog", "apiproxy")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('apiproxy', '0003_access_requests'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('accounts', '0002_apikey'),
        ('auth', '0012_alter_user_first_name_max_length'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
        migrations.CreateModel(
            name='Backend',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='Short name used on the command line, e.g. gpu01.', max_length=64, unique=True, validators=[django.core.validators.RegexValidator('^[A-Za-z0-9][A-Za-z0-9_.-]*$', 'Letters, digits, . _ -')])),
                ('base_url', models.CharField(help_text='As for the OpenAI SDK, ending in /v1: http://gpu01:8000/v1', max_length=500, validators=[catalog.baseurl.base_url_validate], verbose_name='base URL')),
                ('api_key', catalog.crypto.EncryptedTextField(blank=True, default='', help_text='Sent as a Bearer token to the backend. Stored encrypted.', verbose_name='API key')),
                ('enabled', models.BooleanField(default=True)),
                ('pool', models.CharField(choices=[('shared', 'shared'), ('dedicated', 'dedicated')], default='shared', help_text='Dedicated: reserved capacity, used by groups with dedicated access (group limits).', max_length=16)),
                ('max_concurrency', models.PositiveIntegerField(default=4, help_text='Requests in flight per model on this backend; more wait.', validators=[django.core.validators.MinValueValidator(1)])),
                ('healthy', models.BooleanField(default=True)),
                ('last_checked_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.CharField(blank=True, max_length=300)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'db_table': 'apiproxy_backend',
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='GroupLimits',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('rpm', models.PositiveIntegerField(blank=True, help_text='Empty: inherit. 0: unlimited.', null=True, verbose_name='requests per minute')),
                ('tpm', models.PositiveIntegerField(blank=True, help_text='Empty: inherit. 0: unlimited.', null=True, verbose_name='tokens per minute')),
                ('dedicated_access', models.BooleanField(default=False, help_text='Members are routed to the dedicated backend pool where a model has one (the performance class).')),
                ('requestable', models.BooleanField(default=False, help_text='Users may ask to join this group from Settings > Access.')),
                ('description', models.TextField(blank=True, help_text='What membership offers, shown to users who may ask.')),
                ('group', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='portico_limits', to='auth.group')),
            ],
            options={
                'verbose_name': 'group limits and classes',
                'verbose_name_plural': 'group limits and classes',
                'db_table': 'apiproxy_grouplimits',
            },
        ),
        migrations.CreateModel(
            name='KeyLimits',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('rpm', models.PositiveIntegerField(blank=True, help_text='Empty: inherit. 0: unlimited.', null=True, verbose_name='requests per minute')),
                ('tpm', models.PositiveIntegerField(blank=True, help_text='Empty: inherit. 0: unlimited.', null=True, verbose_name='tokens per minute')),
                ('key', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='limits', to='accounts.apikey')),
            ],
            options={
                'verbose_name': 'key limits',
                'verbose_name_plural': 'key limits',
                'db_table': 'apiproxy_keylimits',
            },
        ),
        migrations.CreateModel(
            name='Model',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('public_id', models.CharField(help_text='The name users pass as `model`.', max_length=200, unique=True, verbose_name='model id')),
                ('display_name', models.CharField(blank=True, max_length=200)),
                ('context_window', models.PositiveIntegerField(default=catalog.models.context_window_default, validators=[django.core.validators.MinValueValidator(1)])),
                ('max_output_tokens', models.PositiveIntegerField(blank=True, help_text='Requests asking for more are clamped.', null=True)),
                ('supports_chat', models.BooleanField(default=True, verbose_name='chat')),
                ('supports_completions', models.BooleanField(default=True, verbose_name='completions')),
                ('supports_embeddings', models.BooleanField(default=False, verbose_name='embeddings')),
                ('supports_transcription', models.BooleanField(default=False, verbose_name='transcription')),
                ('supports_vision', models.BooleanField(default=False, verbose_name='vision')),
                ('capabilities_locked', models.BooleanField(default=False, help_text='Set when staff edit capabilities or limits: discovery then leaves capabilities, context window and max output tokens alone.', verbose_name='keep staff edits')),
                ('enabled', models.BooleanField(default=True)),
                ('everyone', models.BooleanField(default=True, help_text='Otherwise only members of the access groups may use it.', verbose_name='open to everyone')),
                ('recommended_params', models.JSONField(blank=True, default=dict, help_text='Shown to users and used by the chat, e.g. {"temperature": 0.7}.', verbose_name='recommended sampling parameters')),
                ('quota_weight', models.DecimalField(decimal_places=3, default=Decimal('1'), help_text='Tokens on this model count this many times against quotas.', max_digits=6, validators=[django.core.validators.MinValueValidator(Decimal('0'))])),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('access_groups', models.ManyToManyField(blank=True, related_name='catalog_models', to='auth.group')),
            ],
            options={
                'db_table': 'apiproxy_model',
                'ordering': ['public_id'],
            },
        ),
        migrations.CreateModel(
            name='UserLimits',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('rpm', models.PositiveIntegerField(blank=True, help_text='Empty: inherit. 0: unlimited.', null=True, verbose_name='requests per minute')),
                ('tpm', models.PositiveIntegerField(blank=True, help_text='Empty: inherit. 0: unlimited.', null=True, verbose_name='tokens per minute')),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='limits', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'user limits',
                'verbose_name_plural': 'user limits',
                'db_table': 'apiproxy_userlimits',
            },
        ),
        migrations.CreateModel(
            name='AccessRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('use_case', models.TextField()),
                ('models_wanted', models.CharField(blank=True, max_length=500, verbose_name='models')),
                ('expected_volume', models.CharField(blank=True, max_length=200)),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('refused', 'Refused')], db_index=True, default='pending', max_length=10)),
                ('staff_note', models.TextField(blank=True, help_text='Sent to the user with the decision.')),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('group', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='access_requests', to='auth.group')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='access_requests', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'db_table': 'apiproxy_accessrequest',
                'ordering': ['-created_at'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('state', 'pending')), fields=('user', 'group'), name='apiproxy_one_pending_request_per_class')],
            },
        ),
        migrations.CreateModel(
            name='Deployment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('upstream_model', models.CharField(help_text='The model name this backend expects.', max_length=200)),
                ('enabled', models.BooleanField(default=True)),
                ('served', models.BooleanField(default=True, help_text='Listed by the backend at the last discovery.')),
                ('reported_context_window', models.PositiveIntegerField(blank=True, null=True)),
                ('last_seen_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('backend', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deployments', to='catalog.backend')),
                ('model', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deployments', to='catalog.model')),
            ],
            options={
                'db_table': 'apiproxy_deployment',
                'ordering': ['model__public_id', 'backend__name'],
                'constraints': [models.UniqueConstraint(fields=('model', 'backend'), name='apiproxy_deployment_model_backend')],
            },
        ),
            ],
        ),
        migrations.RunPython(content_types_move, content_types_return),
    ]
