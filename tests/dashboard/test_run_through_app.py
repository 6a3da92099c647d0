"""A page opened as a server's first visit still runs inside app.py's navigation (``widgets.run_through_app``).

That relies on Streamlit's private ``PagesManager.uses_pages_directory`` (streamlit 1.67.0), read and reset in
``run_through_app`` alone. Both directions are checked, so an upgrade that renames the flag, or changes what it
decides, fails here: without the call, Streamlit runs such a page alone; with it, the page runs through the app.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

MAIN = """
import streamlit as st

st.session_state["main_runs"] = st.session_state.get("main_runs", 0) + 1
st.navigation([st.Page("pages/first.py", default=True), st.Page("pages/second.py")]).run()
"""

SECOND_PAGE = """
import streamlit as st
{call}
st.text(f"main ran {{st.session_state.get('main_runs', 0)}} time(s)")
"""


def first_visit(app_dir: Path, call: str) -> list[str]:
    """The texts of ``pages/second.py`` opened first (a deep link), in an app like ours: a main script with
    ``st.navigation`` next to a ``pages/`` folder."""
    (app_dir / "pages").mkdir()
    (app_dir / "main.py").write_text(MAIN)
    (app_dir / "pages" / "first.py").write_text("import streamlit as st\nst.text('first page')\n")
    (app_dir / "pages" / "second.py").write_text(SECOND_PAGE.format(call=call))
    app = AppTest.from_file(str(app_dir / "main.py"), default_timeout=30)
    app.switch_page("pages/second.py").run()
    assert not app.exception, app.exception
    return [text.value for text in app.text]


def test_run_through_app_runs_a_deep_linked_page_inside_the_main_script(tmp_path: Path) -> None:
    call = "from dashboard import widgets\nwidgets.run_through_app()"
    assert first_visit(tmp_path, call) == ["main ran 1 time(s)"]


def test_without_it_streamlit_runs_a_deep_linked_page_alone(tmp_path: Path) -> None:
    """What run_through_app is there for; should an upgrade change it, the workaround may be dropped."""
    assert first_visit(tmp_path, call="") == ["main ran 0 time(s)"]
