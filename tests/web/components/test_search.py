"""Search from the drawer: the highlight built from the store's marks, the hits, opening one at its message."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from backend.services import Services
from backend.storage.conversations import MARK_END, MARK_START, SearchHit
from web.components.search import highlight, hit_link

from ..finders import arrived, by_testid, click, shown, wait_for
from ..test_frame import drawer_titles
from .test_message_jump import branched

M, E = MARK_START, MARK_END


def test_marked_words_are_highlighted_and_the_rest_escaped() -> None:
    assert highlight(f"the {M}bread{E} rose") == "the <mark>bread</mark> rose"
    assert highlight(f'<img src=x onerror="alert(1)"> {M}bread{E} & <b>') == \
        '&lt;img src=x onerror=&quot;alert(1)&quot;&gt; <mark>bread</mark> &amp; &lt;b&gt;'
    assert highlight(f"{M}<script>{E}") == "<mark>&lt;script&gt;</mark>"


def test_marks_that_do_not_pair_up_still_give_well_formed_html() -> None:
    assert highlight(f"{M}open") == "<mark>open</mark>"
    assert highlight(f"close{E} and {M}{M}twice{E}{E}") == "close and <mark>twice</mark>"
    assert highlight("") == ""


def test_a_hit_links_to_its_message_or_to_its_conversation() -> None:
    hit = SearchHit(conversation_id="c1", title="t", message_id="m1", role="user", snippet="", created_at=0)
    assert hit_link(hit) == "/c/c1?m=m1"
    hit.message_id = None
    assert hit_link(hit) == "/c/c1"


async def search_for(user: User, text: str) -> list[ui.item]:
    field = await shown(user, "search", ui.input)
    field.value = text
    await wait_for(user, lambda: by_testid(user, "search-hit", ui.item) or by_testid(user, "search-empty"),
                   f"results for {text!r}")
    return by_testid(user, "search-hit", ui.item)


async def test_typing_shows_hits_with_their_words_marked_and_html_as_text(owner: User, services: Services) -> None:
    bread = await services.store.create(title="Bread recipe")
    await services.store.add_message(bread.id, "user", "How long should the sourdough rise?")
    hostile = await services.store.create(title="Odd one")
    await services.store.add_message(hostile.id, "user", "sourdough <img src=x onerror=alert(1)> <script>x</script>")
    await services.store.organise([hostile.id], archived=True)
    await owner.open("/")
    await wait_for(owner, lambda: drawer_titles(owner) == ["Bread recipe"], "the drawer")

    hits = await search_for(owner, "sourd")
    assert len(hits) == 2
    snippets = [s.content for s in by_testid(owner, "search-hit-snippet", ui.html)]
    assert "How long should the <mark>sourdough</mark> rise?" in snippets
    [odd] = [s for s in snippets if "img" in s]
    assert "<img" not in odd and "<script" not in odd and "&lt;img src=x onerror=alert(1)&gt;" in odd
    assert len(by_testid(owner, "search-hit-archived")) == 1  # the archived conversation is marked
    assert drawer_titles(owner) == []  # the list gives way to the results

    (await shown(owner, "search", ui.input)).value = "flour"
    assert (await shown(owner, "search-empty", ui.label)).text == "No results for “flour”"
    assert not by_testid(owner, "search-hit")

    (await shown(owner, "search", ui.input)).value = ""
    await wait_for(owner, lambda: drawer_titles(owner) == ["Bread recipe"], "the list back")
    assert not by_testid(owner, "search-hit")


async def test_a_hit_opens_its_conversation_on_the_branch_holding_the_message(owner: User,
                                                                             services: Services) -> None:
    conv, first, _second = await branched(services)  # the second answer is the one shown
    await owner.open("/")
    [hit] = await search_for(owner, "violet")
    left = owner.client
    click(owner, hit)
    await arrived(owner, f"/c/{conv.id}?m={first.id}", left)
    await wait_for(owner, lambda: by_testid(owner, "branch-label", ui.label), "the versions")
    assert [m.id for m in await services.store.messages(conv.id)][-1] == first.id
    labels = [label.text for label in by_testid(owner, "branch-label", ui.label)]
    assert labels == ["1/2"]
