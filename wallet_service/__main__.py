from wallet_service.server import main

main()
