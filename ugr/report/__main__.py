"""``python -m ugr.report``: stage 4 (``ugr.report.cli``)."""

from ugr.report.cli import main
from ugr.report.results import process_started

main(started=process_started())
