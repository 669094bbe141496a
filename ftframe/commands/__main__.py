from ftframe.commands import main

raise SystemExit(main())
