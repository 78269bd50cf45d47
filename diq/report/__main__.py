from diq.report.command import main

raise SystemExit(main())
