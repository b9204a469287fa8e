"""Plain Locust on /ping, without scalelab's recorder: the baseline of the recorder's cost."""

from locust import FastHttpUser, task


class PlainPing(FastHttpUser):
    """One GET /ping after another, no wait."""

    @task
    def ping(self) -> None:
        self.client.get("/ping")
