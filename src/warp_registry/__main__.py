from warp_registry.cli import main

main()
