"""Knowledge-base articles with their version history, the bot's question log and conversation state, and the
satisfaction answers customers give after a ticket is resolved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from app.channels.models import ChannelAccount
    from app.customers.models import Customer
    from app.staff.models import Staff
    from app.tickets.models import Ticket


class Article(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=200)
    #: the answer, Markdown (sent to customers as plain text)
    body = fields.TextField(default="")
    #: other ways customers ask the same thing (the matcher indexes them with the title)
    questions: list[str] = fields.JSONField(default=list)
    tags: list[str] = fields.JSONField(default=list)
    category = fields.CharField(max_length=32, default="", db_index=True)
    owner: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="kb_articles", null=True, on_delete=fields.SET_NULL
    )
    #: draft | published | retired - only published articles are searched
    status = fields.CharField(max_length=16, default="draft", db_index=True)
    #: bumped on every edit - each edit leaves an ArticleVersion with the new content
    version = fields.IntField(default=1)
    #: the ticket this article was drafted from, if any
    source_ticket_id = fields.IntField(null=True)
    #: an agent's edit of a published or retired article (the changed fields), waiting for a lead or admin to
    #: publish it - customers keep getting the live text until then
    pending: dict[str, Any] | None = fields.JSONField(null=True)
    #: Staff.id of whoever proposed the pending edit last
    pending_by_id = fields.IntField(null=True)
    pending_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "kb_article"


class ArticleVersion(Model):
    id = fields.IntField(primary_key=True)
    article: fields.ForeignKeyRelation[Article] = fields.ForeignKeyField(
        "gongdan.Article", related_name="versions", on_delete=fields.CASCADE
    )
    version = fields.IntField()
    #: title, body, questions, tags, category, status as they were after this edit
    snapshot: dict[str, Any] = fields.JSONField(default=dict)
    editor: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="kb_edits", null=True, on_delete=fields.SET_NULL
    )
    note = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "kb_article_version"
        unique_together = (("article", "version"),)


class BotQuery(Model):
    """One customer question the bot tried to answer (the knowledge-gap report reads these)."""

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharField(max_length=32, default="")
    customer_id = fields.IntField(null=True, db_index=True)
    text = fields.CharField(max_length=500)
    best_article_id = fields.IntField(null=True)
    score = fields.FloatField(default=0.0)
    #: answered | menu | no_match | chosen (a menu choice) | handoff
    outcome = fields.CharField(max_length=16, db_index=True)
    #: the second-best article's score (the bot answers on the margin best - runner_up)
    runner_up = fields.FloatField(default=0.0)
    #: whether the scores fused the sentence model (the fused and the lexical thresholds are calibrated apart)
    fused = fields.BooleanField(default=False)
    #: was best_article_id the right answer: right | wrong (None: nobody said)
    verdict = fields.CharField(max_length=8, null=True, db_index=True)
    #: who said so: agent (confirmed or corrected in H5) | customer (解决了 / 没解决)
    verdict_source = fields.CharField(max_length=16, default="")
    #: the article an agent named as the right one (when the bot's was wrong)
    correct_article_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "kb_bot_query"


class BotSession(Model):
    """The bot's side of one customer's conversation on one channel account."""

    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "gongdan.Customer", related_name="bot_sessions", on_delete=fields.CASCADE
    )
    channel_account: fields.ForeignKeyRelation[ChannelAccount] = fields.ForeignKeyField(
        "gongdan.ChannelAccount", related_name="bot_sessions", on_delete=fields.CASCADE
    )
    #: bot (answering) | collecting (asking for ticket details) | human (handed off)
    mode = fields.CharField(max_length=16, default="bot")
    #: unanswered questions in a row - the second one hands off
    failures = fields.IntField(default=0)
    #: the choices of the last menu: [{"id": "kb:3", "content": "..."}]
    menu: list[dict[str, Any]] = fields.JSONField(default=list)
    #: the questions and answers so far: [{"q": "...", "article_id": 3, "outcome": "answered"}]
    attempts: list[dict[str, Any]] = fields.JSONField(default=list)
    #: ticket intake in progress: {"category": "退款", "fields": {"order_no": "..."}, "asking": "phone"}
    intake: dict[str, Any] = fields.JSONField(default=dict)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "kb_bot_session"
        unique_together = (("customer", "channel_account"),)


class Survey(Model):
    """The after-resolution question: was it solved, and a rating 1-5 with an optional comment."""

    id = fields.IntField(primary_key=True)
    ticket: fields.ForeignKeyRelation[Ticket] = fields.ForeignKeyField(
        "gongdan.Ticket", related_name="surveys", on_delete=fields.CASCADE
    )
    customer_id = fields.IntField(db_index=True)
    #: the ticket's version at the resolution that asked (one survey per resolution, even if the job runs twice)
    resolution = fields.IntField(default=0)
    #: the agent the answer counts for (the ticket's assignee when it was resolved)
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "gongdan.Staff", related_name="surveys", null=True, on_delete=fields.SET_NULL
    )
    #: asked_solved | asked_rating | asked_comment | done | expired
    state = fields.CharField(max_length=16, default="asked_solved", db_index=True)
    solved = fields.BooleanField(null=True)
    rating = fields.IntField(null=True)
    comment = fields.CharField(max_length=500, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    answered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "kb_survey"
        unique_together = (("ticket", "resolution"),)


class ArticleVector(Model):
    """Dense vectors of one article's phrasings (title and questions), written by the embedding job.

    Re-embedded only when the phrasings or the model change: ``digest`` covers both.
    """

    id = fields.IntField(primary_key=True)
    article: fields.OneToOneRelation[Article] = fields.OneToOneField(
        "gongdan.Article", related_name="vector", on_delete=fields.CASCADE
    )
    #: the embedding model's name (app.kb.understanding.Embedder.name)
    model = fields.CharField(max_length=64)
    #: SHA-256 of the model name and the phrasings, hex
    digest = fields.CharField(max_length=64)
    #: the phrasings embedded, in row order
    texts: list[str] = fields.JSONField(default=list)
    dim = fields.IntField()
    #: base64 of float32 little-endian, len(texts) rows of dim values
    vectors = fields.TextField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "kb_article_vector"


class BotCalibration(Model):
    """Bot thresholds fitted on this desk's own labelled answers by `gongdan kb calibrate` (the newest active row
    is used; explicit KB_* environment settings still win)."""

    id = fields.IntField(primary_key=True)
    #: fused | lexical (the two kinds of score have their own thresholds)
    kind = fields.CharField(max_length=8)
    answer_score = fields.FloatField()
    answer_margin = fields.FloatField()
    #: precision among the labelled questions the thresholds answer, and the share of labelled questions answered
    precision = fields.FloatField()
    answered_share = fields.FloatField()
    labelled = fields.IntField()
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "kb_bot_calibration"


class EmbeddingAdapter(Model):
    """A linear map on top of the frozen sentence vectors, fitted by `gongdan kb train` on the desk's confirmed
    pairs; kept (active) only when it beat the plain model on the held-out pairs."""

    id = fields.IntField(primary_key=True)
    #: the embedder it adapts (app.kb.understanding.Embedder.name)
    base_model = fields.CharField(max_length=64)
    dim = fields.IntField()
    #: base64 float32 (dim x dim)
    weights = fields.TextField()
    pairs = fields.IntField(default=0)
    held_out = fields.IntField(default=0)
    #: top-1 accuracy on the held-out pairs without and with the adapter
    before = fields.FloatField(default=0.0)
    after = fields.FloatField(default=0.0)
    active = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "kb_embedding_adapter"
