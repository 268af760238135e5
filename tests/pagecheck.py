"""What a browser would run and show of a page coursehub serves: its scripts, inline or
loaded, inline event handlers and styles, its text; and its Content-Security-Policy."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """What a browser would run and show of a page."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict] = []
        self.inline_scripts: list[str] = []
        self.handlers: list[str] = []
        self.styles: list[str] = []
        self.text = ""
        self._in: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in.append(tag)
        self.handlers += [k for k in attrs if k.startswith("on")]
        if "style" in attrs:
            self.styles.append(attrs["style"])
        if tag == "script":
            self.scripts.append(attrs)
        if tag == "style":
            self.styles.append("<style>")
        for key in ("href", "src", "action"):
            if str(attrs.get(key, "")).lower().startswith("javascript:"):
                self.handlers.append(key)

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):
        if self._in and self._in[-1] == "script":
            if data.strip():
                self.inline_scripts.append(data)
            return
        self.text += data


def assert_safe_page(html: str, *shown: str) -> Page:
    page = Page(html)
    assert page.inline_scripts == [], page.inline_scripts
    assert all(s.get("src") for s in page.scripts), page.scripts
    assert page.handlers == [] and page.styles == []
    text = " ".join(page.text.split())
    for value in shown:
        assert " ".join(value.split()) in text, (value, text)
    return page


def policy_of(header: str) -> dict[str, str]:
    """A Content-Security-Policy header as {directive: sources}."""
    parts = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return {p[0]: (p[1] if len(p) > 1 else "") for p in parts}


def assert_strict_policy(header: str, nonce: bool = False) -> dict[str, str]:
    """No inline script (but one with this response's nonce, if `nonce`), no eval, no
    plugins, no framing."""
    policy = policy_of(header)
    assert policy.get("default-src") == "'none'", header
    sources = policy["script-src"].split()
    assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, header
    extra = [s for s in sources if s != "'self'"]
    if nonce:
        assert len(extra) == 1 and extra[0].startswith("'nonce-"), header
    else:
        assert extra == [], header
    assert policy.get("frame-ancestors") == "'none'" and policy.get("object-src") == "'none'"
    return policy
