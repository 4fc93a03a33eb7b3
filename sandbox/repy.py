"""Repy V2's exception names, as a vessel program sees them (docs/seattle.md, The program's API).

These classes are handed to vessel programs. They are plain ``Exception`` subclasses, so
``except Exception`` in a program catches them and nothing a program raises can be a
``BaseException`` that unwinds the runner.
"""

from __future__ import annotations


class RepyException(Exception):
    """Base of every error the Repy API raises."""


class RepyArgumentError(RepyException):
    """Raised when an API call gets an argument of the wrong type or value."""


class CodeUnsafeError(RepyException):
    """Raised when code given to createvirtualnamespace breaks the policy."""


class ContextUnsafeError(RepyException):
    """Raised when a namespace context holds an unsafe key or value."""


class RepyTimeoutError(RepyException):
    """Raised when a network call times out (Repy's ``TimeoutError``)."""


class ResourceUsageError(RepyException):
    """Base of resource errors."""


class ResourceExhaustedError(ResourceUsageError):
    """Raised when a counted resource (threads, files, sockets) is at its limit."""


class ResourceForbiddenError(ResourceUsageError):
    """Raised when a resource (a port) is not granted to this vessel."""


class FileError(RepyException):
    """Base of file errors."""


class RepyFileNotFoundError(FileError):
    """Raised when a file does not exist (Repy's ``FileNotFoundError``)."""


class FileInUseError(FileError):
    """Raised when a file is already open."""


class SeekPastEndOfFileError(FileError):
    """Raised when reading or writing starts past the end of a file."""


class FileClosedError(FileError):
    """Raised when a closed file is used."""


class LockDoubleReleaseError(RepyException):
    """Raised when an unlocked lock is released."""


class NetworkError(RepyException):
    """Base of network errors."""


class NetworkAddressError(NetworkError):
    """Raised when an address cannot be resolved or is malformed."""


class AlreadyListeningError(NetworkError):
    """Raised when a port is already listened on."""


class DuplicateTupleError(NetworkError):
    """Raised when the same local/remote tuple is used twice."""


class CleanupInProgressError(NetworkError):
    """Raised when a local address is still being released by the operating system."""


class LocalIPChanged(NetworkError):
    """Raised when the node's IP changed under an open socket (kept for Seattle's names)."""


class AddressBindingError(NetworkError):
    """Raised when a local address cannot be bound."""


class RepyConnectionRefusedError(NetworkError):
    """Raised when the remote end refuses a connection (Repy's ``ConnectionRefusedError``)."""


class SocketClosedLocal(NetworkError):
    """Raised when a socket closed on this side is used."""


class SocketClosedRemote(NetworkError):
    """Raised when the remote side closed the connection."""


class SocketWouldBlockError(NetworkError):
    """Raised when a non-blocking socket call would block."""


class TCPServerSocketInvalidError(NetworkError):
    """Raised when a closed listener is used."""


class InternetConnectivityError(NetworkError):
    """Raised when no network is usable."""


class PolicyViolation(RepyException):
    """Raised when a program reaches for something the sandbox policy forbids."""


EXCEPTIONS: dict[str, type[Exception]] = {
    "RepyException": RepyException,
    "RepyArgumentError": RepyArgumentError,
    "CodeUnsafeError": CodeUnsafeError,
    "ContextUnsafeError": ContextUnsafeError,
    "TimeoutError": RepyTimeoutError,
    "ResourceUsageError": ResourceUsageError,
    "ResourceExhaustedError": ResourceExhaustedError,
    "ResourceForbiddenError": ResourceForbiddenError,
    "FileError": FileError,
    "FileNotFoundError": RepyFileNotFoundError,
    "FileInUseError": FileInUseError,
    "SeekPastEndOfFileError": SeekPastEndOfFileError,
    "FileClosedError": FileClosedError,
    "LockDoubleReleaseError": LockDoubleReleaseError,
    "NetworkError": NetworkError,
    "NetworkAddressError": NetworkAddressError,
    "AlreadyListeningError": AlreadyListeningError,
    "DuplicateTupleError": DuplicateTupleError,
    "AddressBindingError": AddressBindingError,
    "CleanupInProgressError": CleanupInProgressError,
    "LocalIPChanged": LocalIPChanged,
    "ConnectionRefusedError": RepyConnectionRefusedError,
    "SocketClosedLocal": SocketClosedLocal,
    "SocketClosedRemote": SocketClosedRemote,
    "SocketWouldBlockError": SocketWouldBlockError,
    "TCPServerSocketInvalidError": TCPServerSocketInvalidError,
    "InternetConnectivityError": InternetConnectivityError,
    "PolicyViolation": PolicyViolation,
}
"""The names under which the classes appear in a vessel's namespace."""
