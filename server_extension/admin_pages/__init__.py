"""The admin console's pages (`/agnes/admin/…`): pure functions from admin-API models to
HTML bodies. Handlers (`server_extension/handlers/admin_pages.py`) fetch the models and
wrap the bodies in `page_shell.render_page`; every action a page offers is a form whose
small script calls the admin REST API, so each one is also a scriptable call."""
