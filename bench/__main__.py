"""`make bench`: every benchmark of the suite, each against its own baseline measured in the same run, then the
results table of bench/README.md. (`make load` runs the load and its reconciliation.)"""

import sys

from bench import (
    attachments,
    autonumber,
    bots,
    cold_start,
    concurrency,
    cost,
    delivery,
    email_events,
    geologin,
    graph_upload,
    links,
    mailchimp,
    parsers,
    pixel,
    purge,
    report,
    webform,
)


def main() -> None:
    pixel.main()
    webform.main()
    autonumber.main()
    geologin.main()
    cold_start.main()
    parsers.main()
    purge.main(sys.argv[1:])
    delivery.main(sys.argv[1:])
    bots.main()
    links.main()
    email_events.main()
    graph_upload.main()
    mailchimp.main()
    concurrency.main()
    cost.main()  # after concurrency: it reads its CPU and wall times
    attachments.main()
    print(report.update_readme())


if __name__ == "__main__":
    main()
