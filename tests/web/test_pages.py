"""Studio pages without a browser: sign-in safeguards, CSRF, escaping, access rules and the no-billing fallback."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from reelgate.settings import Settings
from reelgate.web import billing_bridge
from tests.conftest import Running, make_settings, start_app

PASSWORD = "correct horse battery"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", None, signup_credits=30)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async for value in start_app(settings):
        yield value


def _login_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


async def sign_up(client: httpx.AsyncClient, email: str) -> str:
    """Signs up and returns the session's CSRF token, as the studio page carries it."""
    token = _login_token(await client.get("/signup"))
    response = await client.post("/signup", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 200 and 'id="form-notice"' in response.text, response.text
    response = await client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 303, response.text
    studio = await client.get("/studio")
    assert studio.status_code == 200
    found = re.search(r'data-csrf="([^"]+)"', studio.text)
    assert found
    return found.group(1)


async def test_signed_out_visitors_are_sent_to_sign_in(running: Running) -> None:
    response = await running.client.get("/studio?project=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/studio%3Fproject%3Dx"
    htmx = await running.client.get("/studio/estimate", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"] == "/login"


async def test_new_users_see_their_free_credits_and_the_session_cookie_is_locked_down(running: Running) -> None:
    client = running.client
    token = _login_token(await client.get("/signup"))
    response = await client.post(
        "/signup", data={"email": "new@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert not any(h.startswith("rg_session=") for h in response.headers.get_list("set-cookie"))
    response = await client.post("/login", data={"email": "new@example.com", "password": PASSWORD, "csrf_token": token})
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("rg_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    studio = await client.get("/studio")
    assert 'data-testid="balance">30<' in studio.text


async def test_forms_without_the_csrf_token_are_refused(running: Running) -> None:
    csrf = await sign_up(running.client, "csrf@example.com")
    refused = await running.client.post("/studio/projects", data={"name": "Sneaky"})
    assert refused.status_code == 403
    forged = await running.client.post("/studio/projects", data={"name": "Sneaky", "csrf_token": "forged"})
    assert forged.status_code == 403
    accepted = await running.client.post("/studio/projects", data={"name": "Holiday", "csrf_token": csrf})
    assert accepted.status_code == 303
    bad_login = await running.client.post("/login", data={"email": "a@b.co", "password": "x", "csrf_token": "nope"})
    assert bad_login.status_code == 403


async def test_sign_in_is_rate_limited_per_address_and_email(running: Running) -> None:
    client = running.client
    token = _login_token(await client.get("/login"))
    attempt = {"email": "victim@example.com", "password": "wrong password", "csrf_token": token}
    for _ in range(5):
        assert (await client.post("/login", data=attempt)).status_code == 401
    blocked = await client.post("/login", data=attempt)
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.text
    assert int(blocked.headers["Retry-After"]) > 0


async def test_user_text_is_escaped(running: Running) -> None:
    csrf = await sign_up(running.client, "xss@example.com")
    hostile = "<script>alert(1)</script> & friends"
    await running.client.post("/studio/projects", data={"name": hostile, "csrf_token": csrf})
    created = await running.client.post(
        "/studio/generate",
        data={"model": "sandbox-t2v", "prompt": hostile + " in the snow", "duration": "1"},
        headers={"X-CSRF-Token": csrf},
    )
    assert "<script>alert(1)</script>" not in created.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends" in created.text
    studio = await running.client.get("/studio")
    assert "<script>alert(1)" not in studio.text


async def test_admin_pages_are_for_admins_only(running: Running) -> None:
    await sign_up(running.client, "plain@example.com")
    for path in ("/admin", "/admin/generations", "/admin/providers", "/admin/revenue"):
        response = await running.client.get(path)
        assert response.status_code == 403, path
        assert "Administrators only" in response.text


async def test_credits_page_without_the_billing_feature(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(billing_bridge, "billing", None)
    monkeypatch.setattr(billing_bridge, "analytics", None)
    csrf = await sign_up(running.client, "nobilling@example.com")
    page = await running.client.get("/credits")
    assert "Payments are not set up on this site yet" in page.text
    assert "Free credits" in page.text and "+30" in page.text
    checkout = await running.client.post("/credits/checkout", data={"package_id": "pro", "csrf_token": csrf})
    assert checkout.status_code == 303 and checkout.headers["location"] == "/credits"


async def test_the_revenue_page_draws_revenue_cost_and_margin_per_day(running: Running) -> None:
    from reelgate.db.queries.users import user_by_email
    from tests.helpers import make_admin, wait_for_terminal

    csrf = await sign_up(running.client, "owner@example.com")
    ctx = running.ctx
    empty = await running.client.get("/admin/revenue")
    assert empty.status_code == 403
    user = await ctx.db.read(lambda tx: user_by_email(tx, "owner@example.com"))
    assert user is not None
    await make_admin(ctx, user.id)
    assert "No charged jobs in the last 30 days" in (await running.client.get("/admin/revenue")).text

    created = await running.client.post(
        "/studio/generate",
        data={"model": "sandbox-t2v", "prompt": "a paper boat on a pond", "duration": "2", "resolution": "480p"},
        headers={"X-CSRF-Token": csrf},
    )
    generation_id = re.search(r'id="gen-([^"]+)"', created.text)
    assert generation_id, created.text[:300]
    final = await wait_for_terminal(running.client, generation_id.group(1), {})
    assert final["status"] == "succeeded"

    page = (await running.client.get("/admin/revenue")).text
    chart = page[page.index('data-testid="revenue-chart"') : page.index("</figure>")]
    assert chart.count('<g class="day">') == 30 and chart.count("<rect") == 60
    today = ctx.clock().date().isoformat()
    revenue = (ctx.catalog.credit_unit.value * final["credits_charged"]).quantize(Decimal("0.01"))
    assert f"{today}: revenue {revenue}, provider cost " in chart
    assert "<script" not in chart  # drawn on the server: the page's CSP has nothing to allow


async def test_the_revenue_headline_is_the_sum_of_its_tables(running: Running) -> None:
    from reelgate.db.queries.users import user_by_email
    from tests.conftest import make_account
    from tests.helpers import make_admin, seed_finished_job

    await sign_up(running.client, "books@example.com")
    ctx = running.ctx
    admin = await ctx.db.read(lambda tx: user_by_email(tx, "books@example.com"))
    assert admin is not None
    await make_admin(ctx, admin.id)
    buyer = await make_account(ctx, credits=5000)
    await seed_finished_job(ctx, buyer.id, "veo3", {"duration": 8}, 782, "succeeded")
    await seed_finished_job(ctx, buyer.id, "kling-v1-6", {"duration": 5}, 100, "succeeded")

    page = (await running.client.get("/admin/revenue")).text
    headline = page[page.index('data-testid="revenue-headline"') : page.index("Since the start")]
    # Revenue 7.82 + 1.00; provider cost 7.82 / 2.5 (ModelsLab's markup) + 5 s × 0.07 (Pollo) = 3.128 + 0.35.
    assert "8.82 USD" in headline and "3.48 USD" in headline and "5.34 USD" in headline
    assert "60.6 %" in headline
    tables = page[page.index("Since the start") :]
    assert "3.13" in tables and "0.35" in tables  # the per-model rows the headline adds up


async def test_an_image_output_is_shown_as_a_picture_and_downloads_with_its_own_extension(running: Running) -> None:
    from reelgate.db.queries.generations import insert_generation
    from reelgate.db.queries.users import user_by_email
    from reelgate.services import projects
    from tests.helpers import generation_record

    await sign_up(running.client, "painter@example.com")
    ctx = running.ctx
    user = await ctx.db.read(lambda tx: user_by_email(tx, "painter@example.com"))
    assert user is not None
    project_id = await projects.default_project_id(ctx, user.id)
    common = {
        "user_id": user.id,
        "project_id": project_id,
        "status": "succeeded",
        "provider": "replicate",
        "provider_model": "m",
    }
    image = generation_record(
        id="gen_image1",
        model="flux-schnell",
        kind="image",
        prompt="a lighthouse, watercolour",
        output_key="outputs/gen_image1.png",
        output_content_type="image/png",
        **common,
    )
    video = generation_record(
        id="gen_video1",
        model="sandbox-t2v",
        kind="t2v",
        prompt="a lighthouse at dusk",
        output_key="outputs/gen_video1.mp4",
        output_content_type="video/mp4",
        **common,
    )
    for record in (image, video):
        await ctx.db.write(lambda tx, record=record: insert_generation(tx, record))
    page = (await running.client.get("/studio")).text
    image_card = page[page.index('id="gen-gen_image1"') :][:4000]
    assert 'data-testid="output-image"' in image_card and "<video" not in image_card.split("</article>")[0]
    assert 'download="gen_image1.png"' in image_card
    video_card = page[page.index('id="gen-gen_video1"') :][:4000].split("</article>")[0]
    assert "<video" in video_card and 'download="gen_video1.mp4"' in video_card


async def test_the_images_view_shows_only_finished_pictures_at_their_own_size_and_pages_on(running: Running) -> None:
    from reelgate.db.queries.generations import insert_generation
    from reelgate.db.queries.users import user_by_email
    from reelgate.db.records import Generation
    from reelgate.services import projects
    from reelgate.web.gallery import PAGE_SIZE
    from tests.helpers import generation_record

    await sign_up(running.client, "gallery@example.com")
    ctx = running.ctx
    user = await ctx.db.read(lambda tx: user_by_email(tx, "gallery@example.com"))
    assert user is not None
    project_id = await projects.default_project_id(ctx, user.id)
    common = {"user_id": user.id, "project_id": project_id, "provider": "replicate", "provider_model": "m"}

    def image(n: int, status: str = "succeeded") -> Generation:
        return generation_record(
            id=f"gen_pic{n:03d}",
            model="flux-schnell",
            kind="image",
            status=status,
            params={"aspect_ratio": "9:16"},
            prompt=f"picture {n}",
            output_key=f"outputs/gen_pic{n:03d}.webp" if status == "succeeded" else None,
            output_content_type="image/webp" if status == "succeeded" else None,
            output_meta={"width": 768, "height": 1344} if status == "succeeded" else {},
            **common,
        )

    records = [image(n) for n in range(PAGE_SIZE + 1)]
    records.append(image(900, status="processing"))
    records.append(
        generation_record(
            id="gen_vid999",
            model="sandbox-t2v",
            kind="t2v",
            status="succeeded",
            prompt="a clip",
            output_key="outputs/gen_vid999.mp4",
            output_content_type="video/mp4",
            **common,
        )
    )
    for record in records:
        await ctx.db.write(lambda tx, record=record: insert_generation(tx, record))

    page = (await running.client.get("/studio", params={"view": "images"})).text
    grid = page[page.index('id="image-grid"') :].split('id="gallery-list"')[0]
    assert grid.count('class="tile"') == PAGE_SIZE
    assert 'width="768" height="1344"' in grid and "data-lightbox" in grid
    assert "gen_vid999" not in grid and "gen_pic900" not in grid  # a video, and an image still running
    assert 'aria-current="page" data-testid="images-view"' in page
    more = re.search(r'hx-get="(/studio/gallery\?[^"]+view=images)"', grid)
    assert more, "a full page of pictures offers the older ones"
    older = (await running.client.get(more.group(1).replace("&amp;", "&"))).text
    assert older.count('class="tile"') == 1 and "gen_pic000" in older
