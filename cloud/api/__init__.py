"""The FastAPI application: app factory, dependencies, routers per resource, schemas."""
