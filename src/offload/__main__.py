from offload.cli import main

main(prog_name="offload")
