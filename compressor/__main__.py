from compressor.cli.main import main

main()
