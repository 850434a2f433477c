"""Unit tests of stowage_django's pure parts; run from integrations/django: python3 -m unittest discover -s tests -t ."""
from django.conf import settings

settings.configure()
