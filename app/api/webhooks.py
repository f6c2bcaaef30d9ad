"""The ``/v2/webhooks`` routes: subscribe, unsubscribe, list, show, sample.

Zapier's REST Hooks contract: subscribing the same URL again updates it
(same id, same secret), and unsubscribing twice is not an error. Every
route sees only the workspace of the API key (``request.user``); another
workspace's subscription answers exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from psycopg_pool import AsyncConnectionPool

from app import filters
from app.api.bodies import StrictJSON
from app.api.connections import pool_of, pooled, transaction
from app.api.error_responses import documented
from app.api.request_log import note
from app.api.schemas import (
    Lead,
    SubscribeRequest,
    Subscription,
    UnsubscribeRequest,
    UnsubscribeResult,
)
from app.database import subscriptions
from app.settings import Settings
from app.targets import check_url_resolved

# request.user is the workspace id the API key belongs to (see app.api.auth).
WorkspaceRequest = Request[int, None, Any]

SAMPLE_SIZE = 3


def _filter(name: str, description: str) -> QueryParameter:
    return QueryParameter(name=name, description=description, required=False)


class WebhooksController(Controller):
    path = "/webhooks"
    tags = ("webhooks",)

    @post(
        "/subscribe",
        dto=StrictJSON[SubscribeRequest],
        return_dto=None,
        status_code=HTTP_201_CREATED,
        responses={
            HTTP_200_OK: ResponseSpec(
                generate_examples=False,
                data_container=Subscription,
                description="Updated: this workspace had subscribed the URL "
                "already; same id and secret",
            ),
            **documented(400, 401, 413, 415, 503),
        },
        summary="Subscribe a URL (201 created, 200 updated)",
    )
    async def subscribe(
        self,
        request: WorkspaceRequest,
        data: JSONBody[SubscribeRequest],
    ) -> Response[Subscription]:
        """Create a subscription, or update the filter of this URL's subscription.

        The answer is 201 with a new id and signing secret, or 200 with the
        existing ones when this workspace already subscribed the URL. A
        disabled subscription becomes active again and its held deliveries
        are released.
        """
        settings: Settings = request.app.state.settings
        target = await check_url_resolved(data.target_url, settings)
        filter_config = data.filter_config or filters.FilterConfig()

        async with pooled(pool_of(request)) as conn:
            result = await subscriptions.subscribe(
                conn, request.user, data.target_url, filter_config
            )

        note(
            subscription_id=result.row["id"],
            outcome="created" if result.created else "updated",
            target_host=target.hostname,
            released=result.released,
        )
        return Response(
            Subscription.from_row(result.row),
            status_code=HTTP_201_CREATED if result.created else HTTP_200_OK,
        )

    @post(
        "/unsubscribe",
        dto=StrictJSON[UnsubscribeRequest],
        return_dto=None,
        status_code=HTTP_200_OK,
        responses=documented(400, 401, 404, 413, 415, 503),
        summary="Unsubscribe by id (body)",
    )
    async def unsubscribe(
        self, request: WorkspaceRequest, data: JSONBody[UnsubscribeRequest]
    ) -> UnsubscribeResult:
        """Stop deliveries to a subscription; repeating it answers 200 again."""
        return await _unsubscribe(pool_of(request), request.user, data.id)

    @delete(
        "/{subscription_id:int}",
        status_code=HTTP_200_OK,
        responses=documented(401, 404, 503),
        summary="Unsubscribe by id (path)",
    )
    async def delete(
        self, request: WorkspaceRequest, subscription_id: FromPath[int]
    ) -> UnsubscribeResult:
        """Same as POST /v2/webhooks/unsubscribe, for clients that send DELETE."""
        return await _unsubscribe(pool_of(request), request.user, subscription_id)

    @get("/", responses=documented(401, 503), summary="List subscriptions")
    async def list_subscriptions(self, request: WorkspaceRequest) -> list[Subscription]:
        """This workspace's subscriptions that are not unsubscribed."""
        async with transaction(pool_of(request)) as conn:
            rows = await subscriptions.list_live(conn, request.user)
        return [Subscription.from_row(row) for row in rows]

    @get(
        "/{subscription_id:int}",
        responses=documented(401, 404, 503),
        summary="Show one subscription",
    )
    async def show(
        self, request: WorkspaceRequest, subscription_id: FromPath[int]
    ) -> Subscription:
        """One subscription of this workspace, whatever its state."""
        async with transaction(pool_of(request)) as conn:
            row = await subscriptions.get(conn, request.user, subscription_id)
        return Subscription.from_row(row)

    @get(
        "/sample",
        responses={
            HTTP_200_OK: ResponseSpec(
                generate_examples=False,
                data_container=list[Lead],
                description="Leads in the delivered shape, newest first",
            ),
            **documented(400, 401, 503),
        },
        summary="Sample leads",
    )
    async def sample(
        self,
        request: WorkspaceRequest,
        stream_id: Annotated[str | None, _filter("streamId", "A campaign")] = None,
        account_id: Annotated[
            str | None, _filter("accountId", "A tracked social account")
        ] = None,
        source_type: Annotated[
            str | None, _filter("sourceType", "follower|liker")
        ] = None,
        feedback_status: Annotated[
            str | None, _filter("feedbackStatus", "good|bad")
        ] = None,
        match_confidence: Annotated[
            str | None, _filter("matchConfidence", "high|medium")
        ] = None,
    ) -> Response[bytes]:
        """Up to 3 recent leads the filter matches, exactly as deliveries carry them.

        Query parameters follow the filterConfig rules. With no matching lead
        the answer holds one clearly made-up example lead of the same shape.
        """
        # The parameters above document the query for OpenAPI; the rules
        # (unknown, removed and repeated names included) read the raw query.
        filter_config = filters.parse_query(request.query_params.multi_items())

        async with transaction(pool_of(request)) as conn:
            leads = await subscriptions.sample_leads(
                conn, request.user, filter_config, SAMPLE_SIZE
            )
            if not leads:
                leads = [await subscriptions.example_lead(conn, filter_config)]

        # The texts are built by ctgo_lead_payload(), as for deliveries; they
        # are joined, not re-encoded, so the bytes match a delivery's.
        body = ("[" + ",".join(leads) + "]").encode()
        return Response(body, media_type="application/json")


async def _unsubscribe(
    pool: AsyncConnectionPool, workspace_id: int, subscription_id: int
) -> UnsubscribeResult:
    async with transaction(pool) as conn:
        result = await subscriptions.unsubscribe(conn, workspace_id, subscription_id)

    note(
        subscription_id=result.id,
        outcome="unsubscribed" if result.changed else "already_unsubscribed",
        cancelled=result.cancelled,
    )
    return UnsubscribeResult(id=result.id)
