"""The game layer (over `organisms` and `audit_tools`). Today it holds the `pinhole` command, assembled
from each package's sub-commands; blind sessions, access tiers, reports and scoring arrive with issue 12."""
