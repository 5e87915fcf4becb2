"""Version of the mmdeploy package."""
__version__ = '0.1.0'
