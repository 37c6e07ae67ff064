"""The command line: thin commands over the Python API (``shipyard --help``)."""

from shipyard.cli import db, deploy, models, monitor, optimize, retrain, rollout, runs, serve
from shipyard.cli.app import app

app.add_typer(models.app, name="models")
app.add_typer(db.app, name="db")
app.add_typer(deploy.app, name="deploy")
app.add_typer(monitor.app, name="monitor")
app.add_typer(rollout.app, name="rollout")
app.add_typer(runs.app, name="runs")
app.command("serve")(serve.serve)
app.command("optimize")(optimize.optimize)
app.command("run")(runs.run)
app.command("retrain")(retrain.retrain)


def main() -> None:
    app()


__all__ = ["app", "main"]
