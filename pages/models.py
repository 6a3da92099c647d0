"""Models: what the pipeline serves, the model chosen in the app, every built model with its card, the builds.

What the pipeline serves and the choice come from the cluster monitor's snapshot (its supervisors' heartbeats and
the control topic); cards and builds from the models folder. The page never waits on Kafka or the network: a
choice is queued to Kafka, a Flair model is checked in the background, a rebuild runs as its own process.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import charts, models, resources, widgets
from dashboard.cluster_monitor import ClusterSnapshot
from dashboard.model_control import console_path, log_tail
from sentiment_model import pretrained, registry
from sentiment_model.registry import BuiltModel

widgets.run_through_app()

settings = resources.settings()
monitor = resources.cluster_monitor()
checker = resources.pretrained_checker()
CHOICE_KEY = "models-choice"
TICKET_KEY = "models-publication"
REFUSAL_KEY = "models-refusal"
REBUILD_KEY = "models-rebuild-message"

widgets.status_bar()
st.title("Models")
st.caption(
    "The model the pipeline serves, the one chosen here, every built model with its card, and the builds. "
    "A choice travels to the pipeline through Kafka (the control topic); its workers switch at their next "
    "checkpoint, so no post is lost or scored twice."
)


def built_models() -> list[BuiltModel]:
    return registry.built_models(settings.models_dir)


# --- what the pipeline serves, and the choice ---------------------------------------------------------


def serving_section(snapshot: ClusterSnapshot, built: list[BuiltModel], now: float) -> None:
    st.subheader("Serving now")
    if not snapshot.kafka_ok or snapshot.pipeline is None:
        st.info("Not known: Kafka has not answered the dashboard yet (see above).", icon=":material/help:")
        return
    pipeline = snapshot.pipeline
    if not pipeline.live:
        st.info(
            "No pipeline supervisor reports now, so no model is served. Posts wait in Kafka until the pipeline "
            "runs (python -m pipeline).",
            icon=":material/pause_circle:",
        )
        return
    items = models.served(pipeline.supervisors, built, now)
    serving = [item for item in items if item.model]
    waiting = [item for item in items if not item.model]
    with st.container(horizontal=True):
        if serving:
            first = serving[0]
            name = models.served_name(first)
            st.metric(
                "Active model",
                name if first.built is not None or name in registry.PRETRAINED else Path(name).stem,
                border=True,
                help="as the pipeline's supervisors report it",
            )
            if first.built is not None:
                kind = "quick (less accurate)" if models.is_quick(first.built) else models.profile_of(first.built)
                st.metric("Kind", kind or "–", border=True)
                f1 = models.macro_f1(first.built)
                st.metric("Held-out macro-F1", f"{f1:.3f}" if f1 is not None else "–", border=True)
            elif name in registry.PRETRAINED:
                st.metric("Kind", "Flair pretrained", border=True)
        else:
            st.metric("Active model", "none yet", border=True)
        if waiting:
            lag = snapshot.pipeline_group.total_lag if snapshot.pipeline_group else None
            st.metric("Posts waiting", f"{lag:,}" if lag is not None else "–", border=True)
    if serving and serving[0].version is not None:
        st.caption(f"Version {serving[0].version}, as the pipeline's supervisors report it.")
    for item in waiting:
        st.text(
            f"{item.host} (supervisor pid {item.pid}): waiting for a model: {item.waiting_for or 'no reason given'}"
        )
    table = pd.DataFrame(
        [
            {
                "supervisor": f"{item.host} pid {item.pid}",
                "serves": models.served_name(item) if item.model else "",
                "version": item.version or "",
                "file": item.model or "",
                "waiting for a model": item.waiting_for or "",
                "heartbeat": item.heartbeat_age,
            }
            for item in items
        ]
    )
    st.dataframe(
        table if waiting else table.drop(columns="waiting for a model"),
        hide_index=True,
        key="models-served",
        column_config={"heartbeat": st.column_config.NumberColumn("heartbeat (s ago)", format="%.0f")},
    )


def choice_section(snapshot: ClusterSnapshot) -> None:
    """The app's latest choice (the control topic, through the cluster monitor) and whether it is in effect."""
    choice = snapshot.model_choice
    if not snapshot.control_read:
        st.info(
            "The current choice is not known yet: the dashboard reads the control topic "
            f"{widgets.literal(settings.topic_pipeline_control)} with the cluster (or the topic does not exist yet).",
            icon=":material/sync:",
        )
        return
    if choice is None:
        st.caption(
            f"Chosen now: nothing in the app, so the pipeline serves SENTISTREAM_MODEL, {widgets.literal(settings.model)}."
        )
        return
    # The record is Kafka data (anyone may write the topic): text only.
    st.text(f"Chosen now: {choice.model}  (at {widgets.clock(choice.chosen_at)}, by {choice.by or 'unknown'})")
    served = snapshot.pipeline.served_models if snapshot.pipeline is not None else ()
    in_effect = models.choice_in_effect(choice.model, served, settings.models_dir)
    if in_effect is None:
        st.warning(
            "That model cannot be loaded yet (not built, or gone): the pipeline keeps serving what it serves, "
            "or waits.",
            icon=":material/hourglass_top:",
        )
    elif in_effect:
        st.caption("The pipeline serves it.")
    elif served:
        st.info(
            "The pipeline has not switched yet: its workers switch at their next checkpoint once their supervisor "
            "reads the choice.",
            icon=":material/sync:",
        )


# --- switching ---------------------------------------------------------------------------------------


def option_text(option: str, built: dict[str, BuiltModel]) -> str:
    if option == registry.AUTO:
        return "auto: the best model built (the full one, else the quick one)"
    if option in built:
        return models.describe(built[option])
    if option in registry.PRETRAINED:
        return f"{option} (Flair pretrained, POSITIVE/NEGATIVE; downloaded once from Flair's server)"
    return option


def switch(option: str) -> None:
    st.session_state.pop(REFUSAL_KEY, None)
    st.session_state.pop(TICKET_KEY, None)
    if option in registry.PRETRAINED:
        availability = checker.availability(option)
        if availability.checking and availability.checked_at is None:
            st.session_state[REFUSAL_KEY] = (
                f"Still checking whether {option} can be loaded here: press again in a moment."
            )
            return
        if availability.problem is not None:
            st.session_state[REFUSAL_KEY] = f"Not switched: {availability.problem}"
            return
    try:
        st.session_state[TICKET_KEY] = resources.choice_publisher().publish(option)
    except (ValueError, BufferError) as exc:
        st.session_state[REFUSAL_KEY] = f"Not switched: {exc or 'too many messages wait for Kafka'}"


@st.fragment(run_every=2)
def switch_section() -> None:
    st.subheader("Switch the active model")
    choice_section(monitor.snapshot())
    built = {model.name: model for model in built_models()}
    options = [registry.AUTO, *built, *registry.PRETRAINED]
    option = st.selectbox(
        "Model to serve",
        options,
        format_func=lambda option: option_text(option, built),
        key=CHOICE_KEY,
        help="auto serves the full model when it is built, the quick one until then.",
    )
    pretrained_name = option in registry.PRETRAINED
    if pretrained_name:
        availability = checker.availability(option)
        if availability.checked_at is None:
            st.caption(f"Checking whether {option} can be loaded here (cached, or Flair's server reachable)…")
        elif availability.problem is None:
            st.caption(f"{option} can be loaded here ({pretrained.cached_file(option)} or Flair's server).")
        else:
            st.error(f"{option} cannot be loaded here, so it cannot be chosen.", icon=":material/cloud_off:")
            st.text(availability.problem)
    st.button(
        "Make it the active model",
        icon=":material/swap_horiz:",
        type="primary",
        key="models-switch",
        on_click=switch,
        args=(option,),
    )
    if REFUSAL_KEY in st.session_state:
        st.error("The model was not switched.", icon=":material/block:")
        st.text(st.session_state[REFUSAL_KEY])
    ticket = st.session_state.get(TICKET_KEY)
    publication = resources.choice_publisher().publication(ticket) if ticket is not None else None
    if publication is not None:
        if publication.pending:
            st.info(f"Sending the choice {publication.choice.model} to Kafka…", icon=":material/sync:")
        elif publication.error is not None:
            st.error("Kafka did not take the choice: the model was not switched.", icon=":material/cloud_off:")
            st.text(publication.error)
        else:
            st.success(
                f"Sent: the pipeline serves {publication.choice.model} from its next checkpoint.",
                icon=":material/check_circle:",
            )


# --- builds ------------------------------------------------------------------------------------------


def rebuild(name: str) -> None:
    try:
        pid = resources.build_launcher().rebuild(name)
    except ValueError as exc:
        st.session_state[REBUILD_KEY] = ("error", f"Not started: {exc}.")
    else:
        st.session_state[REBUILD_KEY] = ("success", f"Rebuild of {name} started (pid {pid}); its progress shows here.")


def build_figures(view: models.BuildView, now: float) -> list[tuple[str, str]]:
    """(label, value) of what a build reported; what it did not report is left out."""
    progress = view.progress
    figures = []
    if view.live:
        eta = progress.eta_seconds
        figures.append(("ETA", models.duration(eta) if eta is not None else "not known yet"))
    if progress.epoch is not None and progress.epochs:
        figures.append(("Epoch", f"{progress.epoch}/{progress.epochs}"))
    if progress.loss is not None:
        figures.append(("Loss", f"{progress.loss:.4f}"))
    if progress.dev_macro_f1 is not None:
        figures.append(("Dev macro-F1", f"{progress.dev_macro_f1:.3f}"))
    if progress.test_macro_f1 is not None:
        figures.append(("Held-out macro-F1", f"{progress.test_macro_f1:.3f}"))
    figures.append(("Started", widgets.clock(progress.started_at)))
    if progress.state == "running":
        figures.append(("Last update", widgets.ago(now - progress.updated_at)))
    else:
        figures.append(("Ended", widgets.clock(progress.updated_at)))
    return figures


def build_view(view: models.BuildView, now: float) -> None:
    progress = view.progress
    with st.container(border=True):
        state = "stopped (its process is gone)" if view.stale else "running" if view.live else progress.state
        st.markdown(f"**{widgets.literal(progress.name)}** · {models.build_kind(progress)} profile · {state}")
        if view.stale:
            st.warning(
                f"This build stopped: its process (pid {progress.pid}) is gone, and its last word, "
                f"{widgets.ago(now - progress.updated_at)}, was {progress.phase or 'starting'} at "
                f"{progress.percent:.0f}%. It was killed, or its machine stopped; rebuild to start again.",
                icon=":material/stop_circle:",
            )
        elif progress.state == "failed":
            st.error("This build failed.", icon=":material/error:")
            if progress.error:
                st.text(progress.error)
        st.progress(min(max(progress.percent / 100, 0.0), 1.0), text=models.bar_text(view))
        with st.container(horizontal=True):
            for label, value in build_figures(view, now):
                st.metric(label, value)
        tail = log_tail(registry.log_path(settings.models_dir, progress.name))
        with st.expander(f"Build log (last lines of {progress.name}.build.log)", expanded=view.live or view.stale):
            st.code(tail or "(no log)", language=None)
        console = log_tail(console_path(settings.models_dir, progress.name), lines=20)
        if console is not None:
            with st.expander(f"Terminal output of the rebuild started here ({progress.name}.build.out)"):
                st.code(console, language=None)


@st.fragment(run_every=2)
def builds_section() -> None:
    st.subheader("Builds")
    now = time.time()
    views = models.builds(settings.models_dir)
    if not views:
        st.caption(f"No build has reported in {settings.models_dir} yet.")
    for view in views:
        build_view(view, now)
    launcher = resources.build_launcher()
    with st.container(horizontal=True):
        for name, profile in registry.PROFILE_OF.items():
            running = launcher.running(name)
            st.button(
                f"Rebuild the {profile} model",
                icon=":material/build:",
                key=f"models-rebuild-{name}",
                on_click=rebuild,
                args=(name,),
                disabled=running,
                help=f"python -m sentiment_model.build --profile {profile} --force"
                + (" (disabled: its build runs now)" if running else ""),
            )
    message = st.session_state.pop(REBUILD_KEY, None)
    if message is not None:
        kind, text = message
        (st.error if kind == "error" else st.success)(text)


# --- cards -------------------------------------------------------------------------------------------


def card_view(model: BuiltModel, full: BuiltModel | None) -> None:
    card = model.card
    held_out = models.held_out(card)
    with st.container(border=True, key=f"card-{model.name}"):
        profile = models.profile_of(model) or "?"
        st.markdown(f"### {widgets.literal(model.name)}")
        built_at = card.get("built_at")
        st.caption(
            f"{profile} profile · version {model.version}"
            + (f" · built {widgets.clock(built_at)}" if isinstance(built_at, (int, float)) else "")
            + f" · {card.get('architecture', '')}"
        )
        f1 = models.macro_f1(model)
        if models.is_quick(model):
            full_f1 = models.macro_f1(full) if full is not None else None
            st.warning(
                "**The quick model**: built first, in minutes, so that sentiment shows early; it is less accurate "
                f"than the full model. Held-out macro-F1 **{f1:.3f}**"
                if f1 is not None
                else "**The quick model**: built first, in minutes; less accurate than the full model.",
                icon=":material/speed:",
            )
            if full_f1 is not None:
                st.caption(f"The full model's held-out macro-F1: {full_f1:.3f}.")
        speed = card.get("speed_sentences_per_second") or {}
        with st.container(horizontal=True):
            accuracy = models.accuracy(model)
            st.metric("Held-out accuracy", f"{accuracy:.3f}" if accuracy is not None else "–", border=True)
            st.metric("Held-out macro-F1", f"{f1:.3f}" if f1 is not None else "–", border=True)
            st.metric("Test examples", f"{held_out.get('test_size', 0):,}", border=True)
            st.metric("Size", models.size_text(card, model.path), border=True)
            st.metric(
                "Speed, fp32",
                f"{speed['batch_32']:,.0f}/s" if isinstance(speed, dict) and "batch_32" in speed else "not measured",
                border=True,
                help="sentences per second at batch 32, measured during the build",
            )
        left, middle, right = st.columns([1, 0.9, 1.3])
        with left:
            st.markdown("**Per class**")
            st.dataframe(
                models.per_class_frame(card),
                hide_index=True,
                key=f"card-{model.name}-classes",
                column_config={
                    name: st.column_config.NumberColumn(name, format="%.3f") for name in ("precision", "recall", "F1")
                },
            )
        matrix = models.confusion(card)
        if matrix is not None:
            middle.plotly_chart(
                charts.confusion_matrix(*matrix), key=f"card-{model.name}-confusion", theme=None, width="stretch"
            )
        else:
            middle.caption("No confusion matrix in this card.")
        sources = models.by_source_frame(card)
        if not sources.empty:
            right.plotly_chart(
                charts.source_accuracy(sources), key=f"card-{model.name}-sources", theme=None, width="stretch"
            )
        speeds = models.speed_frame(card)
        st.markdown("**Speed by runtime** (sentences per second, measured during the build on its machine)")
        if speeds.empty:
            st.caption("Not measured for this model.")
        else:
            st.dataframe(
                speeds,
                hide_index=True,
                key=f"card-{model.name}-speed",
                column_config={
                    "accuracy": st.column_config.NumberColumn("held-out accuracy", format="%.3f"),
                    "macro-F1": st.column_config.NumberColumn("held-out macro-F1", format="%.3f"),
                },
            )
        with st.expander("Data, licence and training"):
            st.dataframe(models.data_frame(card), hide_index=True, key=f"card-{model.name}-data")
            config = card.get("config") or {}
            training = card.get("training") or {}
            st.json({"base_model": card.get("base_model"), "config": config, "training": training}, expanded=False)


@st.fragment(run_every=15)
def cards_section() -> None:
    st.subheader("Built models")
    built = built_models()
    if not built:
        st.info(
            f"No model is built in {settings.models_dir} yet. The quick model takes a few minutes to build, the "
            "full one about 20 minutes; their progress shows under Builds.",
            icon=":material/hourglass_empty:",
        )
    full = models.full_model(built)
    for model in built:
        card_view(model, full)


@st.fragment(run_every=2)
def pretrained_section() -> None:
    st.subheader("Flair pretrained models")
    st.caption(
        "Flair's own English sentiment models (two labels, POSITIVE and NEGATIVE): fetched from Flair's server the "
        f"first time they are used, then kept in Flair's cache ({pretrained.flair_cache_root()})."
    )
    rows = []
    problems = []
    for name in registry.PRETRAINED:
        availability = checker.availability(name)
        if availability.checked_at is None:
            status = "checking…"
        elif availability.problem is None:
            status = "cached" if pretrained.cached_file(name).exists() else "can be downloaded"
        else:
            status = "cannot be loaded here"
            problems.append(availability.problem)
        rows.append({"name": name, "status": status, "from": pretrained.PRETRAINED_URLS[name]})
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="models-pretrained")
    for problem in problems:
        st.text(problem)


@st.fragment(run_every=3)
def serving_view() -> None:
    serving_section(monitor.snapshot(), built_models(), time.time())


serving_view()
switch_section()
builds_section()
cards_section()
pretrained_section()
