from podtier.webhook.commands.main import main

raise SystemExit(main())
