"""The monthly report as a PDF for funders (fpdf2, pure Python): the same
figures as the print view (projects.reports.month_report), as tables."""

from __future__ import annotations

from datetime import datetime

from fpdf import FPDF

from projects.models import Project
from projects.reports import MonthReport
from projects.selectors import UsageLine

FONT = "Helvetica"


def _text(value: object) -> str:
    # The core fonts speak Latin-1: anything else prints as "?" rather than
    # failing the whole report over one member's name.
    return str(value).encode("latin-1", "replace").decode("latin-1")


def _table(pdf: FPDF, title: str, lines: list[UsageLine]) -> None:
    pdf.set_font(FONT, "B", 11)
    pdf.cell(0, 8, _text(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    with pdf.table(col_widths=(70, 25, 30, 30, 35), text_align="RIGHT") as table:
        header = table.row()
        for cell in ("", "requests", "prompt", "completion", "weighted tokens"):
            header.cell(cell)
        for line in lines:
            row = table.row()
            row.cell(_text(line.label), align="LEFT")
            totals = line.totals
            for value in (
                totals.requests,
                totals.prompt_tokens,
                totals.completion_tokens,
                totals.weighted_tokens,
            ):
                row.cell(f"{value:,}")
    pdf.ln(4)


def report_pdf(
    *, project: Project, report: MonthReport, generated_at: datetime
) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(_text(f"{project.name} {report.month:%Y-%m}"))
    pdf.add_page()
    pdf.set_font(FONT, "B", 15)
    pdf.cell(
        0,
        10,
        _text(f"{project.name}: {report.month:%B %Y}"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font(FONT, "", 10)
    facts = [
        f"Principal investigator: {project.pi.get_username()}",
        f"Period: {project.starts_on:%Y-%m-%d} to {project.ends_on:%Y-%m-%d}",
        "Allocation this month: "
        + (f"{report.allocation:,} weighted tokens" if report.allocation else "none"),
        f"Used this month: {report.usage.total.weighted_tokens:,} weighted tokens",
        f"Used since the start: {report.used_to_date:,} weighted tokens",
    ]
    for fact in facts:
        pdf.cell(0, 6, _text(fact), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    _table(pdf, "By member", report.usage.by_member)
    _table(pdf, "By model", report.usage.by_model)
    pdf.set_font(FONT, "B", 11)
    pdf.cell(0, 8, "Allocation history", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    for change in report.history:
        pdf.cell(
            0,
            5,
            _text(
                f"{change.changed_at:%Y-%m-%d}: {change.allocation_tokens:,} tokens "
                f"until {change.ends_on:%Y-%m-%d} ({change.reason})"
            ),
            new_x="LMARGIN",
            new_y="NEXT",
        )
    pdf.ln(4)
    pdf.set_font(FONT, "I", 8)
    pdf.cell(0, 5, _text(f"Generated {generated_at:%Y-%m-%d %H:%M %Z}"))
    return bytes(pdf.output())
