"""riskmodel: 技术流 credit risk scoring for sci-tech SMEs.

Importing this package has no side effects: no tracking URI is set, no thread pool is started.
"""

__version__ = "0.1.0"
