from tholos.cli import main

raise SystemExit(main())
