"""The creative library: search every configured DAM, import an asset as an offer's creative, and
keep its validity in step with the DAM (beat)."""
from __future__ import annotations

from dataclasses import dataclass

import structlog
from django.contrib.auth.models import AbstractBaseUser
from django.utils.html import escape

from apps.campaigns import selectors as campaign_selectors
from apps.campaigns import services as campaign_services
from apps.core.exceptions import NotFound, ServiceError, Unavailable
from apps.core.outbound import OutboundError

from ..adaptors import ConnectionProblem, adaptor_for, plain_words
from ..adaptors.dam import DamAdaptor
from ..models import Connection, ConnectionKind
from .connections import connection_config

log = structlog.get_logger("apps.integrations")

DAM_KINDS = (ConnectionKind.AEM, ConnectionKind.BYNDER, ConnectionKind.APRIMO)


def _dam(connection: Connection) -> DamAdaptor:
    adaptor = adaptor_for(connection_config(connection))
    assert isinstance(adaptor, DamAdaptor)
    return adaptor


def creative_search(*, query: str, source: str = "", limit: int = 20) -> dict:
    """``{"items": [...], "sources": [...]}`` over every enabled DAM (``source``: one kind only). A DAM
    that fails is listed with its error in plain words; the others still answer. None configured:
    both lists empty."""
    if source and source not in DAM_KINDS:
        raise ServiceError(f"source must be one of {', '.join(DAM_KINDS)}", field="source")
    connections = Connection.objects.filter(enabled=True, kind__in=[source] if source else DAM_KINDS)
    items: list[dict] = []
    sources: list[dict] = []
    for connection in connections.order_by("name"):
        entry = {"connection": connection.name, "connection_id": connection.pk, "kind": connection.kind}
        try:
            found = _dam(connection).search(query, limit=limit)
        except OutboundError as exc:
            sources.append({**entry, "ok": False, "error": plain_words(exc, connection.get_kind_display()).message})
            continue
        except ConnectionProblem as exc:
            sources.append({**entry, "ok": False, "error": exc.message})
            continue
        except (KeyError, TypeError, ValueError) as exc:
            sources.append({**entry, "ok": False, "error": f"unexpected answer ({type(exc).__name__})"})
            continue
        sources.append({**entry, "ok": True, "count": len(found)})
        items += [{**asset.as_json(connection.name), "connection_id": connection.pk} for asset in found]
    return {"items": items, "sources": sources}


def _markup(url: str, mime: str, offer) -> str | None:
    if not mime.startswith("image/"):
        return None
    return (f'<a href="{escape(offer.landing_url)}"><img src="{escape(url)}" width="{offer.width}" '
            f'height="{offer.height}" alt="{escape(offer.name)}"></a>')


def creative_import(*, offer_id: int, connection_id: int, asset_id: str, actor: AbstractBaseUser | None):
    """Read the asset from its DAM and make it the offer's creative (image assets become the markup)."""
    connection = Connection.objects.filter(pk=connection_id, enabled=True, kind__in=DAM_KINDS).first()
    if connection is None:
        raise NotFound(f"No enabled DAM connection {connection_id}.", field="connection_id")
    offer = campaign_selectors.offer_get_or_none(offer_id=offer_id)
    if offer is None:
        raise NotFound(f"Offer {offer_id} does not exist.", field="offer_id")
    try:
        asset = _dam(connection).fetch(asset_id)
    except OutboundError as exc:
        if exc.status_code == 404:
            raise NotFound(f"{connection.get_kind_display()} has no asset {asset_id!r}.", field="asset_id") from None
        raise Unavailable(plain_words(exc, connection.get_kind_display()).message,
                          retry_after=int(exc.retry_after) if exc.retry_after is not None else None) from None
    except ConnectionProblem as exc:
        raise Unavailable(exc.message) from None
    return campaign_services.offer_creative_import(
        offer_id=offer_id, actor=actor, source=connection.kind, connection_id=connection.pk, asset_id=asset.id,
        asset_url=asset.url, mime=asset.mime, valid_until=asset.valid_until, blocked_reason=asset.blocked_reason,
        markup=_markup(asset.url, asset.mime, offer))


@dataclass
class ValiditySummary:
    checked: int = 0
    changed: int = 0
    errors: int = 0


def creative_validity_sync() -> ValiditySummary:
    """Beat: ask each DAM about every imported asset; an expired, withdrawn or unapproved one stops
    bidding (and starts again once valid). A DAM that cannot be reached changes nothing."""
    summary = ValiditySummary()
    connections = {c.pk: c for c in Connection.objects.filter(enabled=True, kind__in=DAM_KINDS)}
    for offer_id, connection_id, asset_id in campaign_selectors.offer_ids_with_dam_assets():
        connection = connections.get(connection_id or -1)
        if connection is None or not asset_id:
            continue
        summary.checked += 1
        try:
            asset = _dam(connection).fetch(asset_id)
            valid_until, reason = asset.valid_until, asset.blocked_reason
        except OutboundError as exc:
            if exc.status_code != 404:
                summary.errors += 1
                log.warning("creative_validity_unknown", offer_id=offer_id, error=str(exc))
                continue
            valid_until, reason = None, f"withdrawn: no longer in {connection.get_kind_display()}"
        except (ConnectionProblem, KeyError, TypeError, ValueError) as exc:
            summary.errors += 1
            log.warning("creative_validity_unknown", offer_id=offer_id, error=str(exc))
            continue
        summary.changed += campaign_services.offer_creative_validity_set(
            offer_id=offer_id, valid_until=valid_until, blocked_reason=reason)
    return summary
