"""The campaigns part of ``manage.py seed_demo``: demo users and campaigns in every interesting state.

Everything goes through the services (so each campaign has its real votes and audit trail). The live
campaigns bid on the common banner sizes 300x250, 320x50 and 728x90 on site and app traffic from the
US (``target_countries=["USA"]``: OpenRTB's ``geo.country`` is ISO alpha-3; alpha-2 input is
normalised to alpha-3 on write, and the bidder normalises requests the same way), started in the
past, end in the future and have generous budgets. One live campaign has no country targeting, so
the OpenRTB spec's example requests (which carry no geo) get a bid too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from html import escape

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from apps.core.roles import Role

from . import services
from .models import Campaign

DEFAULT_PASSWORDS = {"admin": "admin-demo", "marketer": "marketer-demo", "approver": "approver-demo"}
BANNER_SIZES = ((300, 250), (320, 50), (728, 90))
SIZE_NAMES = {(300, 250): "medium rectangle", (320, 50): "mobile banner", (728, 90): "leaderboard"}


@dataclass
class DemoUser:
    username: str
    password: str
    from_env: bool
    roles: tuple[str, ...]
    superuser: bool = False


@dataclass
class DemoCampaign:
    name: str
    advertiser: str
    domain: str
    category: str
    state: str
    budget: Decimal
    headline: str
    subline: str
    cta: str
    colours: tuple[str, str]
    max_bids: tuple[str, str, str]
    channels: list[str] = field(default_factory=lambda: ["display"])
    countries: list[str] = field(default_factory=lambda: ["USA"])
    start_days: float = -3
    end_days: float = 60
    ctr: tuple[float, float, float] = (0.004, 0.002, 0.003)
    reason: str = ""


CAMPAIGNS = [
    DemoCampaign("Stride Running — Spring Launch", "Stride Athletics", "stride-athletics.com", "IAB17", "live",
                 Decimal("9500.00"), "Run lighter this spring", "Cloudstep 3 · free returns", "Shop now",
                 ("#0f766e", "#14b8a6"), ("4.2000", "2.4000", "3.6000"), ctr=(0.0061, 0.0032, 0.0044)),
    DemoCampaign("Harbor Coffee — Morning Rewards", "Harbor Coffee Co.", "harborcoffee.com", "IAB8", "live",
                 Decimal("7500.00"), "Your morning, rewarded", "Double stars on every latte", "Order ahead",
                 ("#78350f", "#b45309"), ("3.1000", "1.9000", "2.8000"), channels=["display", "in_app"],
                 countries=[], ctr=(0.0075, 0.0041, 0.0052)),
    DemoCampaign("Nimbus Backup — 30-day Free Trial", "Nimbus Software", "nimbusbackup.io", "IAB19-18", "live",
                 Decimal("25000.00"), "Never lose a file again", "Encrypted cloud backup · 30 days free",
                 "Start free trial", ("#1e3a8a", "#3b82f6"), ("5.5000", "3.0000", "4.8000"),
                 ctr=(0.0048, 0.0021, 0.0039)),
    DemoCampaign("Wanderly — Weekend Getaways", "Wanderly Travel", "wanderly.travel", "IAB20", "live",
                 Decimal("9000.00"), "48 hours somewhere new", "Hotels + flights from $199", "Find a getaway",
                 ("#7c2d12", "#f97316"), ("3.8000", "2.2000", "3.3000"), ctr=(0.0055, 0.0027, 0.0040)),
    DemoCampaign("Brightside Insurance — Quote in 60s", "Brightside Insurance", "brightside-insure.com", "IAB13",
                 "paused", Decimal("6000.00"), "Car insurance in 60 seconds", "Switch and save up to 20%",
                 "Get a quote", ("#312e81", "#6366f1"), ("4.0000", "2.0000", "3.5000"),
                 reason="Creative refresh with legal"),
    DemoCampaign("Summer Sneaker Clearance", "Stride Athletics", "stride-athletics.com", "IAB17", "completed",
                 Decimal("1500.00"), "Last call: summer styles", "Up to 50% off", "Shop the sale",
                 ("#9d174d", "#ec4899"), ("3.0000", "1.8000", "2.6000"), start_days=-30),
    DemoCampaign("Aurora Streaming — Holiday Originals", "Aurora Streaming", "aurora.tv", "IAB1-6", "scheduled",
                 Decimal("8000.00"), "New originals every Friday", "First month on us", "Start watching",
                 ("#111827", "#7c3aed"), ("4.5000", "2.5000", "4.0000"), start_days=3, end_days=45),
    DemoCampaign("Lumen Home — Smart Lighting", "Lumen Home", "lumenhome.com", "IAB10", "in_review",
                 Decimal("4000.00"), "Light that follows you", "Smart bulbs from $12", "See the range",
                 ("#854d0e", "#eab308"), ("2.9000", "1.6000", "2.4000"), start_days=2),
    DemoCampaign("Fresh Basket — Weekend SMS Deals", "Fresh Basket Groceries", "freshbasket.com", "IAB8",
                 "in_review_one_vote", Decimal("3000.00"), "Fresh deals every weekend", "Text FRESH to join",
                 "Join now", ("#166534", "#22c55e"), ("2.5000", "1.5000", "2.0000"), channels=["sms", "display"],
                 start_days=2),
    DemoCampaign("Quick Loans Now — Instant Cash", "QLN Finance", "quickloansnow.example", "IAB13-7", "rejected",
                 Decimal("2000.00"), "Cash in minutes", "No credit check", "Apply", ("#7f1d1d", "#ef4444"),
                 ("6.0000", "3.0000", "5.0000"), start_days=1,
                 reason="Financial claims need substantiation and APR disclosure (ad policy 4.2)"),
    DemoCampaign("Pinecrest Outdoor — Fall Gear", "Pinecrest Outdoor", "pinecrest-outdoor.com", "IAB17-18", "draft",
                 Decimal("3500.00"), "Built for the first frost", "Jackets, boots and packs", "Explore fall gear",
                 ("#14532d", "#65a30d"), ("3.2000", "1.9000", "2.7000"), start_days=10, end_days=70),
]


def banner(width: int, height: int, c: DemoCampaign, landing_url: str) -> str:
    """A self-contained HTML banner (inline styles only, no external assets) that fits ``width`` x ``height``."""
    dark, light = c.colours
    box = (f"display:block;position:relative;overflow:hidden;box-sizing:border-box;width:{width}px;height:{height}px;"
           f"background:linear-gradient(135deg,{dark},{light});color:#fff;text-decoration:none;"
           "font-family:Helvetica,Arial,sans-serif")
    button = (f"background:#fff;color:{dark};border-radius:4px;font-weight:700;white-space:nowrap;")
    brand, headline, subline, cta = (escape(c.advertiser), escape(c.headline), escape(c.subline), escape(c.cta))
    if height >= 200:  # medium rectangle: stacked
        inner = (f'<div style="position:absolute;left:18px;top:16px;font-size:11px;letter-spacing:2px;'
                 f'text-transform:uppercase;opacity:.85">{brand}</div>'
                 f'<div style="position:absolute;left:18px;right:18px;top:44px;font-size:26px;font-weight:700;'
                 f'line-height:1.1">{headline}</div>'
                 f'<div style="position:absolute;left:18px;right:18px;top:140px;font-size:14px">{subline}</div>'
                 f'<span style="position:absolute;left:18px;bottom:18px;padding:9px 16px;font-size:14px;{button}">'
                 f'{cta} &rsaquo;</span>')
    elif width >= 700:  # leaderboard: one row
        inner = (f'<div style="position:absolute;left:20px;top:14px;font-size:11px;letter-spacing:2px;'
                 f'text-transform:uppercase;opacity:.85">{brand}</div>'
                 f'<div style="position:absolute;left:20px;top:36px;width:370px;font-size:20px;font-weight:700;'
                 f'white-space:nowrap;overflow:hidden;text-overflow:ellipsis">{headline}</div>'
                 f'<div style="position:absolute;left:410px;top:30px;width:150px;font-size:13px;line-height:1.3;'
                 f'opacity:.95">{subline}</div>'
                 f'<span style="position:absolute;right:20px;top:28px;padding:9px 16px;font-size:14px;{button}">'
                 f'{cta} &rsaquo;</span>')
    else:  # mobile banner: headline and a compact button
        inner = (f'<div style="position:absolute;left:10px;top:7px;font-size:9px;letter-spacing:1px;'
                 f'text-transform:uppercase;opacity:.85">{brand}</div>'
                 f'<div style="position:absolute;left:10px;top:21px;font-size:15px;font-weight:700;'
                 f'white-space:nowrap">{headline}</div>'
                 f'<span style="position:absolute;right:8px;top:13px;padding:6px 9px;font-size:11px;{button}">'
                 f'{cta}</span>')
    return (f'<a href="{escape(landing_url)}" target="_blank" rel="noopener" style="{box}" '
            f'aria-label="{brand}: {headline}">{inner}</a>')


def demo_users(passwords: dict[str, str]) -> list[DemoUser]:
    """The demo users; ``passwords`` maps admin/marketer/approver to the configured password ('' = default)."""
    def pw(role: str) -> tuple[str, bool]:
        return (passwords[role], True) if passwords.get(role) else (DEFAULT_PASSWORDS[role], False)

    return [
        DemoUser("admin", *pw("admin"), roles=(Role.ADMIN,), superuser=True),
        DemoUser("marketer", *pw("marketer"), roles=(Role.MARKETER,)),
        DemoUser("approver", *pw("approver"), roles=(Role.APPROVER,)),
        # High-budget and regulated campaigns need two approvers.
        DemoUser("approver2", *pw("approver"), roles=(Role.APPROVER,)),
    ]


def ensure_user(spec: DemoUser):
    """Create or update a demo user; the password is (re)set so the printed one always works."""
    user, created = get_user_model().objects.get_or_create(username=spec.username)
    user.is_staff = True
    user.is_superuser = spec.superuser
    user.email = user.email or f"{spec.username}@demo.campaign-express.local"
    user.set_password(spec.password)
    user.save()
    user.groups.add(*Group.objects.filter(name__in=spec.roles))
    return user, created


def ensure_campaign(c: DemoCampaign, *, marketer, approver, approver2) -> tuple[Campaign, bool]:
    """Create ``c`` and walk it to its demo state, unless a campaign of that name exists already."""
    existing = Campaign.objects.filter(name=c.name).first()
    if existing is not None:
        return existing, False
    now = timezone.now()
    with transaction.atomic():
        campaign = services.campaign_create(
            actor=marketer, name=c.name, advertiser=c.advertiser, budget=c.budget, channels=c.channels,
            start_at=now + timedelta(days=c.start_days), end_at=now + timedelta(days=c.end_days),
            target_countries=c.countries, target_device_types=[], target_segments=[],
            max_impressions_per_hour=10, max_impressions_per_day=50,
        )
        landing = f"https://www.{c.domain}/?utm_source=campaign-express&utm_campaign=demo"
        for (width, height), max_bid, ctr in zip(BANNER_SIZES, c.max_bids, c.ctr, strict=True):
            services.offer_create(
                campaign_id=campaign.pk, actor=marketer, name=f"{c.headline} — {SIZE_NAMES[(width, height)]}",
                creative_markup=banner(width, height, c, landing), width=width, height=height,
                landing_url=landing, advertiser_domain=c.domain, category=c.category,
                max_bid_cpm=Decimal(max_bid), priority={300: 7, 728: 6, 320: 5}[width], observed_ctr=ctr,
            )
        if c.state == "draft":
            return campaign, True
        services.campaign_submit(campaign_id=campaign.pk, actor=marketer)
        if c.state == "in_review":
            return campaign, True
        if c.state == "in_review_one_vote":
            services.campaign_approve(campaign_id=campaign.pk, actor=approver2, reason="Opt-out text checked")
            return campaign, True
        if c.state == "rejected":
            services.campaign_reject(campaign_id=campaign.pk, actor=approver, reason=c.reason)
            return campaign, True
        services.campaign_approve(campaign_id=campaign.pk, actor=approver, reason="Brand and landing page checked")
        if Campaign.objects.get(pk=campaign.pk).status != "approved":
            services.campaign_approve(campaign_id=campaign.pk, actor=approver2, reason="Budget signed off")
        if c.state == "scheduled":
            services.campaign_schedule(campaign_id=campaign.pk, actor=marketer)
            return campaign, True
        services.campaign_go_live(campaign_id=campaign.pk, actor=marketer)
        if c.state == "paused":
            services.campaign_pause(campaign_id=campaign.pk, actor=marketer, reason=c.reason)
        elif c.state == "completed":
            services.campaign_add_spend(campaign_id=campaign.pk, amount=c.budget)
            services.campaign_complete(campaign_id=campaign.pk, actor=None, reason="budget spent")
    return campaign, True
