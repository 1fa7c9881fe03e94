from imagesync.cli import run

run()
