"""The aiohttp application: booking webhook, join pages, Socket.IO signalling."""
