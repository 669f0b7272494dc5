"""The app's pages: one module per page, each with a `render()` that draws it (registered in `ui.app`)."""
