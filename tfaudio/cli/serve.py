"""`tfaudio serve`: the local web app over a search index and a label store."""

from __future__ import annotations

import click

from tfaudio.cli.common import friendly_errors

#: A TCP port; 0 asks the system for any free one.
PORT = click.IntRange(0, 65535)


@click.command()
@click.argument("index_path", metavar="INDEX")
@click.option("--labels", "database", required=True, metavar="DB",
              help="The label store (an SQLite file, created when absent); other servers and commands may use it "
                   "at the same time.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback lets other machines reach the app (a warning "
                   "says so); prefer an SSH tunnel.")
@click.option("--port", type=PORT, default=0, show_default=True, help="Port to listen on; 0: any free port.")
@click.option("--annotator", default="", help="The name labels are stored under when the page gives none (default: your login name).")
@click.option("--no-browser", is_flag=True, help="Only print the URL; do not open a browser.")
@friendly_errors
def serve(index_path, database, host, port, annotator, no_browser):
    """Search, listen and label in the browser: a local web server over the search index INDEX and
    the label store DB. Prints the URL to open, with the token every request needs
    (http://127.0.0.1:PORT/?token=...); Ctrl-C stops it. See docs/app.md."""
    import getpass

    from tfaudio.app.server import serve as run_server

    if not annotator:
        try:
            annotator = getpass.getuser()
        except (KeyError, OSError):  # no user name in this environment (a container without one)
            annotator = ""
    run_server(index_path, database, host=host, port=port, annotator=annotator, open_browser=not no_browser,
               say=click.echo, warn=lambda line: click.echo(line, err=True))
