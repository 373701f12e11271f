// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title EMR Ledger Merkle anchor
/// @notice Records the root of EMR Ledger's append-only Merkle log at increasing
///         tree sizes. A root, once anchored for a size, can never be replaced.
contract MerkleAnchor {
    /// @notice Who may anchor (the deployer: the EMR Ledger node or its relayer).
    address public immutable owner;
    /// @notice The anchored root for each tree size (zero: none).
    mapping(uint64 => bytes32) public rootOf;
    /// @notice The largest tree size anchored so far.
    uint64 public latestSize;

    event Anchored(uint64 indexed size, bytes32 root, uint64 lastPosition);

    error NotOwner();
    error RootAlreadyAnchored(uint64 size, bytes32 anchored);
    error NotAppendOnly(uint64 size, uint64 latest);

    constructor() {
        owner = msg.sender;
    }

    /// @notice Anchors `root` for `size`. Sending the same root again is a no-op
    ///         (retries are safe); a different root for an anchored size, or a
    ///         size not above the latest, is refused.
    function anchor(uint64 size, bytes32 root, uint64 lastPosition) external {
        if (msg.sender != owner) revert NotOwner();
        bytes32 existing = rootOf[size];
        if (existing != bytes32(0)) {
            if (existing == root) return;
            revert RootAlreadyAnchored(size, existing);
        }
        if (size <= latestSize) revert NotAppendOnly(size, latestSize);
        rootOf[size] = root;
        latestSize = size;
        emit Anchored(size, root, lastPosition);
    }
}
