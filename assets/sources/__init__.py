"""Stage: sources. CSV exports, JSON dumps and MongoDB responses → normalised raw profiles and posts, batch assignment."""
