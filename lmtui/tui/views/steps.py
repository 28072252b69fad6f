"""The Steps view: every decoding step of the last generation. For greedy search and sampling, the
top candidates before and after the sampling filters; for beam search, the beam tree: each step's
hypotheses with the beam they extend, their score, and whether they run on, finished or were pruned."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from lmtui.tui.state import AppState
from lmtui.tui.text import bar, percent
from lmtui.tui.views.beams import Branch, Node, nodes_by_step, survivor_tree

if TYPE_CHECKING:
    from lmtui.decoding.records import BeamStep, Candidate, TokenStep
    from lmtui.generation import GenerateResult

STATUS = {"running": ("●", "$foreground"), "finished": ("✓", "$text-success"),
          "pruned": ("✗", "$foreground-muted strike")}
EMPTY = "Generate something (ctrl+r) to see its steps here."


class StepsView(Horizontal):
    DEFAULT_CSS = """
    StepsView {
        & > OptionList {
            width: 24; height: 1fr; border: none; border-right: vkey $border-blurred; padding: 0;
            text-wrap: nowrap; text-overflow: ellipsis;
        }
        & > OptionList:focus { border: none; border-right: vkey $border; }
        & > #detail { width: 1fr; padding: 0 1; }
    }
    """

    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state
        self._steps: list[TokenStep] = []
        self._table: list[list[Node]] = []
        self._tree: list[Content] = []  # the beam tree's lines
        self._records: tuple[TokenStep | BeamStep, ...] = ()  # the run's records shown

    def compose(self) -> ComposeResult:
        yield OptionList(markup=False)
        with VerticalScroll(id="detail"):
            yield Static(EMPTY, markup=False)

    def on_mount(self) -> None:
        self.watch(self.app, "result", self.show_result, init=False)

    def show_result(self, result: GenerateResult | None) -> None:
        if result is None:
            self.show_steps("greedy", (), 1)
        else:
            self.show_steps(result.strategy, result.steps, result.settings.num_return_sequences)
            self._refresh_detail()  # the beam tree is whole only now

    def show_steps(self, strategy: str, records: tuple[TokenStep | BeamStep, ...], sequences: int) -> None:
        """Show a run's steps; while it streams, the steps it adds to what is shown are appended, so the
        step the user has highlighted stays where it is."""
        beam = strategy == "beam"
        options = self.query_one(OptionList)
        shown = self._records
        grows = (beam == self.has_class("-beam") and len(records) >= len(shown) > 0
                 and records[len(shown) - 1] is shown[-1])
        self._records = records
        if not grows:
            self.set_class(beam, "-beam")
            self.query_one("#detail Static", Static).update(EMPTY if not records else "")
            options.clear_options()
            shown = ()
        if beam:
            self._table = nodes_by_step(list(records))
            self._tree = self._tree_lines(survivor_tree(self._table), "")
            options.add_options([self._beam_option(nodes) for nodes in self._table[options.option_count:]])
        else:
            self._steps = list(records)
            options.add_options([self._token_option(step, sequences) for step in records[len(shown):]])
        if records and options.highlighted is None:
            options.highlighted = 0

    def _refresh_detail(self) -> None:
        highlighted = self.query_one(OptionList).highlighted
        if highlighted is not None:
            self._show(highlighted)

    def _token_option(self, step: TokenStep, rows: int) -> Option:
        chosen = next((c.prob for c in step.after if c.token_id == step.token_id), 0.0)
        row = f" r{step.row}" if rows > 1 else ""
        return Option(f"{step.step:>3}{row} {self.state.token_text(step.token_id)[:10]:<10} {percent(chosen)}")

    def _beam_option(self, nodes: list[Node]) -> Option:
        counts = {status: sum(n.hypothesis.status == status for n in nodes) for status in STATUS}
        step = nodes[0].step if nodes else 0
        return Option(f"{step:>3}  {counts['running']} on  {counts['finished']} ✓  {counts['pruned']} ✗")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self._show(event.option_index)

    def on_resize(self) -> None:
        self._refresh_detail()

    def _show(self, index: int) -> None:
        detail = self.query_one("#detail Static", Static)
        if self.has_class("-beam") and index < len(self._table):
            detail.update(self._beam_detail(index))
        elif not self.has_class("-beam") and index < len(self._steps):
            detail.update(self._token_detail(self._steps[index]))

    def _token_detail(self, step: TokenStep) -> Content:
        chosen = self.state.token_text(step.token_id)
        parts = [Content.styled(f"step {step.step}: chose ", "bold"), Content.styled(chosen, "bold $accent"),
                 Content(f"  (log-prob {step.logprob:.3f})\n\n")]
        parts += self._candidates("before the filters: the model's own", step.before, step.token_id)
        parts += self._candidates("after the filters: chosen from", step.after, step.token_id)
        return Content.assemble(*parts)

    def _candidates(self, title: str, candidates: tuple[Candidate, ...], chosen: int) -> list[Content]:
        """One line per candidate: token, bar (when there is room for one), probability."""
        room = self.query_one("#detail").size.width - 3
        token = min(14, max(6, room // 3))
        width = room - token - 8
        parts = [Content.styled(title + "\n", "$foreground-muted")]
        for candidate in candidates:
            style = "bold $accent" if candidate.token_id == chosen else ""
            parts += [Content.styled(f"{self.state.token_text(candidate.token_id)[:token]:<{token}} ", style),
                      Content.styled(f"{bar(candidate.prob, width):<{width}} " if width >= 4 else "", "$accent"),
                      Content(f"{percent(candidate.prob)}\n")]
        return parts + [Content("\n")]

    def _beam_detail(self, index: int) -> Content:
        """One step's hypotheses (with the beam each extends), then the tree of the survivors."""
        nodes = self._table[index]
        parts = [Content.styled(f"step {index}: every continuation considered\n", "bold")]
        beam = 0
        for node in nodes:
            hypothesis = node.hypothesis
            icon, style = STATUS[hypothesis.status]
            where = f"beam {beam}" if hypothesis.status == "running" else hypothesis.status
            beam += hypothesis.status == "running"
            parts += [Content.styled(f"{icon} {where:<9}", style),
                      Content.styled(f" ← beam {hypothesis.parent}  {hypothesis.score:8.3f}  ", "$foreground-muted"),
                      Content.styled(self._decoded(node.tokens) + "\n", style)]
        parts += [Content.styled("\nbeam tree: finished hypotheses and the last running beams\n", "bold")]
        return Content.assemble(*parts, *self._tree)

    def _tree_lines(self, branch: Branch, indent: str) -> list[Content]:
        lines = []
        for node in branch.ends:
            icon, style = STATUS[node.hypothesis.status]
            lines.append(Content.styled(f"{indent}{icon} {node.hypothesis.status} at step {node.step}, "
                                        f"score {node.hypothesis.score:.3f}\n", style))
        for number, child in enumerate(branch.children):
            last = number == len(branch.children) - 1
            text = "".join(self.state.token_text(token) for token in child.tokens)
            lines.append(Content.assemble((indent + ("└─ " if last else "├─ "), "$foreground-muted"), text, "\n"))
            lines += self._tree_lines(child, indent + ("   " if last else "│  "))
        return lines

    def _decoded(self, tokens: tuple[int, ...]) -> str:
        session = self.state.session
        return session.tokenizer.decode(list(tokens)).replace("\n", "⏎") if session is not None else ""
