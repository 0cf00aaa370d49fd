async def test_default_model_is_offered(gql):
    data = await gql("{ settlementModels { name batchIntervalSeconds isDefault isActive currencies } }")
    assert data["settlementModels"] == [
        {"name": "DEFAULT", "batchIntervalSeconds": 900, "isDefault": True, "isActive": True, "currencies": []}
    ]
