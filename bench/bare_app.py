"""The baseline of the submission benchmark: a bare FastAPI endpoint, no auth, no Redis."""

from fastapi import FastAPI

app = FastAPI()


@app.post("/v1/jobs", status_code=202)
async def bare(body: dict) -> dict:
    return {"id": "0" * 32, "status": "queued", "parameters": body}
