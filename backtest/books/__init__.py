"""Books: account populations (synthetic or a user's own Parquet) in one account model."""

from backtest.books.generate import BookParams, generate_book
from backtest.books.schema import COLUMNS, Book, read_book, validate_book, write_book

__all__ = ["COLUMNS", "Book", "BookParams", "generate_book", "read_book", "validate_book",
           "write_book"]
